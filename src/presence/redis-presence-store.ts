import type { Redis } from 'ioredis';
import { redisKeys } from '../redis/keys.js';
import { defineScript } from '../redis/scripts.js';
import { assertPresenceId, assertPresenceScope } from './memory-presence-store.js';
import { PresenceBatchError, userScope, type PresenceHold, type PresenceScope, type PresenceStore } from './presence-store.js';

/**
 * Presence shared by every instance, in Redis. Per scope (`conversation:<id>` or `user:<id>`):
 *
 *   {prefix}presence:{<scope>}:entries  ZSET, member `<userId>|<instanceId>`, score its expiry in
 *                                       epoch ms of the Redis server's clock (TIME + ttl), so the
 *                                       instances' clocks never matter
 *   {prefix}presence:{<scope>}:users    HASH userId → number of entries (the instances holding the
 *                                       user, live or expired but not yet swept)
 *
 * `{<scope>}` is a Redis Cluster hash tag: both keys of a scope share a slot, and every script
 * touches the two keys of one scope only. Every hold sets both keys to expire after 2 × ttl, so a
 * scope nobody holds any more (every instance holding it crashed) vanishes without a sweep.
 *
 * Each step is one Lua script (atomic per scope). hold: ZADD, and when the member is new HINCRBY
 * the user's count, which became present when it reached 1. release: ZREM, and when removed
 * HINCRBY -1, gone when it reached 0. sweep: the members whose expiry passed are removed and
 * their users' counts decremented; those reaching 0 are returned, each to exactly one sweeper.
 * An expired entry keeps counting until swept, so the transitions reported for a user (became
 * present, gone) always alternate, whichever instances report them.
 *
 * Batches (refresh, sweep, online) are pipelines of one script call per hold or scope, 1,000 calls
 * per pipeline (refresh, sweep) or one pipeline (online): one round trip per 1,000.
 */

/** Epoch milliseconds by the Redis server's clock. Before any write: effect replication (Redis ≥ 5) allows it. */
const NOW_MS = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`;

/** KEYS: entries, users. ARGV: userId, member, ttlMs, keyTtlMs. 1 when the user became present. */
const HOLD = `${NOW_MS}
local became = 0
if redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[1], 1) == 1 then became = 1 end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return became
`;

/** KEYS: entries, users. ARGV: userId, member. 1 when the user is now held by no instance, -1 when this instance had no entry. */
const RELEASE = `
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return -1 end
if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) > 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`;

/** KEYS: entries, users. The users no instance holds any more once the expired entries are gone. */
const SWEEP = `${NOW_MS}
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired == 0 then return {} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone, seen = {}, {}
for _, member in ipairs(expired) do
  local bar = string.find(member, '|', 1, true)
  local user = bar and string.sub(member, 1, bar - 1) or member
  if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
    redis.call('HDEL', KEYS[2], user)
    if not seen[user] then
      seen[user] = true
      gone[#gone + 1] = user
    end
  end
end
return gone
`;

/** KEYS: entries. ARGV: member, withinMs. This instance's entry (if any) expires within withinMs. */
const HAND_OVER = `${NOW_MS}
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 0
`;

/** KEYS: entries. The users with a live entry, each once. */
const PRESENT = `${NOW_MS}
local users, seen = {}, {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local bar = string.find(member, '|', 1, true)
  local user = bar and string.sub(member, 1, bar - 1) or member
  if not seen[user] then
    seen[user] = true
    users[#users + 1] = user
  end
end
return users
`;

/** KEYS: entries of a user scope. The number of live entries. */
const LIVE_COUNT = `${NOW_MS}
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`;

const SCRIPT_NAMES = {
  hold: 'tidingsPresenceHold',
  release: 'tidingsPresenceRelease',
  sweep: 'tidingsPresenceSweep',
  present: 'tidingsPresencePresent',
  handOver: 'tidingsPresenceHandOver',
  liveCount: 'tidingsPresenceLiveCount',
} as const;

/** Script calls per pipeline in refresh and sweep. */
const PIPELINE_CHUNK = 1_000;


export interface RedisPresenceStoreOptions {
  /** The command connection (never a subscriber one). */
  readonly redis: Redis;
  /** Prepended to every key, e.g. `tidings:`. */
  readonly prefix: string;
  /** This instance (one run of it); the entries it holds are its own. Must not contain `|`, `{` or `}`. */
  readonly instanceId: string;
  /** How long a hold lasts unless refreshed, in milliseconds; keys expire after twice that. */
  readonly ttlMs: number;
}

type Pipeline = ReturnType<Redis['pipeline']>;
type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

export function createRedisPresenceStore(options: RedisPresenceStoreOptions): PresenceStore {
  const { redis, instanceId, ttlMs } = options;
  assertPresenceId('instance id', instanceId);
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new TypeError(`presence: ttlMs must be a positive integer, got ${ttlMs}`);
  const keyTtlMs = 2 * ttlMs;
  const keys = redisKeys(options.prefix);
  const hold = defineScript(redis, SCRIPT_NAMES.hold, HOLD, 2);
  const release = defineScript(redis, SCRIPT_NAMES.release, RELEASE, 2);
  defineScript(redis, SCRIPT_NAMES.sweep, SWEEP, 2);
  const present = defineScript(redis, SCRIPT_NAMES.present, PRESENT, 1);
  defineScript(redis, SCRIPT_NAMES.liveCount, LIVE_COUNT, 1);
  defineScript(redis, SCRIPT_NAMES.handOver, HAND_OVER, 1);

  const holdArgs = (scope: PresenceScope, userId: string) => {
    assertPresenceScope(scope);
    assertPresenceId('user id', userId);
    return [keys.presenceEntries(scope), keys.presenceUsers(scope), userId, `${userId}|${instanceId}`];
  };
  const checkedScope = (scope: PresenceScope) => {
    assertPresenceScope(scope);
    return scope;
  };

  /**
   * Queues the script `name` in `pipeline`: defineScript's commands exist on pipelines too (ioredis
   * copies them), sent as EVALSHA, or as EVAL the first time on a connection.
   */
  const queue = (pipeline: Pipeline, name: string, args: Array<string | number>) =>
    (pipeline as unknown as Record<string, (...args: Array<string | number>) => unknown>)[name]!(...args);

  /**
   * Runs one script call per item, `chunk` calls per pipeline, one pipeline after the other; every
   * chunk is sent even when an earlier one failed (one bad key must not stop the others' refresh).
   */
  const runBatch = async (name: string, calls: ReadonlyArray<Array<string | number>>, chunk: number): Promise<Settled[]> => {
    const settled: Settled[] = [];
    for (let start = 0; start < calls.length; start += chunk) {
      const slice = calls.slice(start, start + chunk);
      const pipeline = redis.pipeline();
      for (const args of slice) queue(pipeline, name, args);
      try {
        const results = await pipeline.exec();
        for (let i = 0; i < slice.length; i++) {
          const [error, value] = results?.[i] ?? [new Error('no reply from Redis')];
          settled.push(error ? { ok: false, error } : { ok: true, value });
        }
      } catch (error) {
        for (let i = 0; i < slice.length; i++) settled.push({ ok: false, error });
      }
    }
    return settled;
  };

  const firstError = (settled: Settled[]) => settled.find((result) => !result.ok) as { error: unknown } | undefined;

  return {
    async hold(scope, userId) {
      return (await hold(...holdArgs(scope, userId), ttlMs, keyTtlMs)) === 1;
    },

    async release(scope, userId) {
      const released = await release(...holdArgs(scope, userId));
      return released === -1 ? undefined : released === 1;
    },

    async refresh(holds) {
      const calls = holds.map(({ scope, userId }) => [...holdArgs(scope, userId), ttlMs, keyTtlMs]);
      const settled = await runBatch(SCRIPT_NAMES.hold, calls, PIPELINE_CHUNK);
      const became = holds.filter((_, i) => {
        const result = settled[i];
        return result?.ok === true && result.value === 1;
      });
      const failure = firstError(settled);
      if (failure) throw new PresenceBatchError('refresh', became, settled.filter((result) => !result.ok).length, holds.length, failure.error);
      return became;
    },

    async handOver(holds, withinMs) {
      const calls = holds.map(({ scope, userId }) => {
        const [entries, , , member] = holdArgs(scope, userId);
        return [entries as string, member as string, Math.max(0, Math.floor(withinMs))];
      });
      const failure = firstError(await runBatch(SCRIPT_NAMES.handOver, calls, PIPELINE_CHUNK));
      if (failure) throw failure.error;
    },

    async sweep(scopes) {
      const unique = [...new Set(scopes.map(checkedScope))];
      const calls = unique.map((scope) => [keys.presenceEntries(scope), keys.presenceUsers(scope)]);
      const settled = await runBatch(SCRIPT_NAMES.sweep, calls, PIPELINE_CHUNK);
      const gone = unique.flatMap((scope, i) => {
        const result = settled[i];
        if (result?.ok !== true || !Array.isArray(result.value)) return [];
        return result.value.map((userId) => ({ scope, userId: String(userId) }));
      });
      const failure = firstError(settled);
      if (failure) throw new PresenceBatchError('sweep', gone, settled.filter((result) => !result.ok).length, unique.length, failure.error);
      return gone;
    },

    async present(scope) {
      const users = await present(keys.presenceEntries(checkedScope(scope)));
      return Array.isArray(users) ? users.map(String) : [];
    },

    async online(userIds) {
      for (const userId of userIds) assertPresenceId('user id', userId);
      const unique = [...new Set(userIds)];
      const settled = await runBatch(SCRIPT_NAMES.liveCount, unique.map((userId) => [keys.presenceEntries(userScope(userId))]), Math.max(1, unique.length));
      const failure = firstError(settled);
      if (failure) throw failure.error;
      return new Set(unique.filter((_, i) => {
        const result = settled[i];
        return result?.ok === true && typeof result.value === 'number' && result.value > 0;
      }));
    },
  };
}
