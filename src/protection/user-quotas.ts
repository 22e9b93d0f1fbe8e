import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisConnections } from '../redis/connections.js';
import { redisKeys } from '../redis/keys.js';
import { defineScript } from '../redis/scripts.js';

/**
 * What a holder may have a bounded number of: a user's WebSocket connections and open
 * subscriptions (keyed by user id), and an anonymous caller's (keyed by addressQuotaKey). Users and
 * addresses are different kinds, so a user id can never be taken for an address.
 */
export type QuotaKind = 'connections' | 'subscriptions' | 'address-connections' | 'address-subscriptions';
const QUOTA_KINDS: readonly QuotaKind[] = ['connections', 'subscriptions', 'address-connections', 'address-subscriptions'];

/** One unit of a quota; `release` is idempotent. */
export interface QuotaLease {
  release(): void;
}

export interface UserQuotas {
  /** A lease when the holder (a user id, or an address key) has fewer than `limit` of `kind` across every instance; otherwise undefined. */
  acquire(kind: QuotaKind, holder: string, limit: number): Promise<QuotaLease | undefined>;
  /** Units held on this instance (for tests and stats). */
  heldLocally(kind: QuotaKind, userId: string): number;
  close(): Promise<void>;
}

/** Counts held on this instance, by kind and user. The Redis variant mirrors them into Redis. */
class LocalCounts {
  // A map per kind keyed by the user id itself: no key string built (and kept) per user.
  private readonly counts = Object.fromEntries(QUOTA_KINDS.map((kind) => [kind, new Map<string, number>()])) as Record<QuotaKind, Map<string, number>>;
  static key = (kind: QuotaKind, userId: string) => `${kind}\u0000${userId}`;

  get(kind: QuotaKind, userId: string): number {
    return this.counts[kind].get(userId) ?? 0;
  }
  add(kind: QuotaKind, userId: string, delta: number): void {
    const counts = this.counts[kind];
    const next = (counts.get(userId) ?? 0) + delta;
    if (next <= 0) counts.delete(userId);
    else counts.set(userId, next);
  }
  entries(): Array<{ kind: QuotaKind; userId: string; count: number }> {
    return QUOTA_KINDS.flatMap((kind) => [...this.counts[kind]].map(([userId, count]) => ({ kind, userId, count })));
  }
}

/**
 * One unit, given back through `giveBack` once. A class rather than a closure pair: a connection
 * and each of its subscriptions hold one for their whole life (about 40 bytes instead of 300).
 */
class UnitLease implements QuotaLease {
  private released = false;

  constructor(
    private readonly giveBack: (kind: QuotaKind, userId: string) => void,
    private readonly kind: QuotaKind,
    private readonly userId: string,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.giveBack(this.kind, this.userId);
  }
}

export function createMemoryUserQuotas(): UserQuotas {
  const counts = new LocalCounts();
  const giveBack = (kind: QuotaKind, userId: string) => counts.add(kind, userId, -1);
  return {
    async acquire(kind, userId, limit) {
      if (counts.get(kind, userId) >= limit) return undefined;
      counts.add(kind, userId, 1);
      return new UnitLease(giveBack, kind, userId);
    },
    heldLocally: (kind, userId) => counts.get(kind, userId),
    async close() {},
  };
}

/**
 * Sums every live holder's count; holders whose instance key has expired (a crashed instance)
 * are dropped on the way, so their units come back within the alive key's lifetime.
 */
const ACQUIRE_SCRIPT = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local holder = ARGV[2]
local alivePrefix = ARGV[3]
local fields = redis.call('HGETALL', key)
local total = 0
for i = 1, #fields, 2 do
  local other = fields[i]
  if other ~= holder and redis.call('EXISTS', alivePrefix .. other) == 0 then
    redis.call('HDEL', key, other)
  else
    total = total + tonumber(fields[i + 1])
  end
end
if total >= limit then return 0 end
redis.call('HINCRBY', key, holder, 1)
redis.call('PEXPIRE', key, ARGV[4])
return 1
`;

const RELEASE_SCRIPT = `
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
`;

/**
 * Per-user counts shared by every instance: `{prefix}quota:{kind}:{userId}` is a hash of holder →
 * count, where a holder is one run of one instance. Each holder keeps `{prefix}instance:{holder}`
 * alive while it runs, so a crashed instance's units are reclaimed once that key expires. Counts
 * are mirrored from this instance's own bookkeeping, and re-written in full after a Redis outage.
 * Redis being unreachable fails open: the limit is a safeguard, not worth refusing everybody.
 */
export function createRedisUserQuotas(options: { connections: RedisConnections; prefix: string; logger: Logger; aliveMs?: number }): UserQuotas {
  const { connections, logger } = options;
  const redis = connections.commands;
  const keys = redisKeys(options.prefix);
  const holder = randomUUID();
  const aliveMs = options.aliveMs ?? 30_000;
  // Long enough to outlive any live holder: the alive key is what really bounds stale counts.
  const quotaKeyTtlMs = 24 * 3600 * 1000;
  const counts = new LocalCounts();
  const acquireScript = defineScript(redis, 'tidingsQuotaAcquire', ACQUIRE_SCRIPT, 1);
  const releaseScript = defineScript(redis, 'tidingsQuotaRelease', RELEASE_SCRIPT, 1);
  let outOfSync = false;
  /** Counts whose Redis copy may be wrong (a failed acquire or release): rewritten on resync. */
  const unsynced = new Set<string>();

  const warn = (error: unknown, what: string) =>
    logger.warn({ err: error instanceof Error ? error.message : String(error) }, `user quota ${what} failed; Redis will be re-synchronised`);

  const keepAlive = () =>
    redis.set(keys.instanceAlive(holder), '1', 'PX', aliveMs).catch((error: unknown) => {
      outOfSync = true;
      warn(error, 'keep-alive');
    });
  const resync = async () => {
    outOfSync = false;
    const pipeline = redis.pipeline();
    pipeline.set(keys.instanceAlive(holder), '1', 'PX', aliveMs);
    const stale = [...unsynced];
    unsynced.clear();
    for (const { kind, userId, count } of counts.entries()) {
      pipeline.hset(keys.quota(kind, userId), holder, count);
      pipeline.pexpire(keys.quota(kind, userId), quotaKeyTtlMs);
    }
    for (const key of stale) {
      const [kind, userId] = key.split('\u0000') as [QuotaKind, string];
      if (counts.get(kind, userId) === 0) pipeline.hdel(keys.quota(kind, userId), holder);
    }
    const results = await pipeline.exec().catch((error: unknown) => [[error as Error, null] as const]);
    const failed = results?.find(([error]) => error);
    if (failed) {
      outOfSync = true;
      for (const key of stale) unsynced.add(key);
      warn(failed[0], 're-synchronisation');
    }
  };
  // Every few beats the full counts are written again: that also renews the quota keys' TTL.
  let beats = 0;
  const fullSyncEvery = Math.max(1, Math.round(600_000 / Math.floor(aliveMs / 3)));
  const heartbeat = setInterval(() => {
    beats++;
    void (outOfSync || beats % fullSyncEvery === 0 ? resync() : keepAlive());
  }, Math.floor(aliveMs / 3));
  heartbeat.unref();
  // On every (re)connection, write this instance's true counts: Redis may have restarted empty,
  // and releases may have failed during the outage.
  const onReady = () => void resync();
  redis.on('ready', onReady);
  if (redis.status === 'ready') void resync();

  const giveBack = (kind: QuotaKind, userId: string) => {
    counts.add(kind, userId, -1);
    releaseScript(keys.quota(kind, userId), holder).catch((error: unknown) => {
      outOfSync = true;
      unsynced.add(LocalCounts.key(kind, userId));
      warn(error, 'release');
    });
  };

  return {
    async acquire(kind, userId, limit) {
      try {
        const allowed = await acquireScript(keys.quota(kind, userId), limit, holder, keys.instanceAlive(''), quotaKeyTtlMs);
        if (allowed !== 1) return undefined;
      } catch (error) {
        outOfSync = true;
        unsynced.add(LocalCounts.key(kind, userId));
        warn(error, 'check');
      }
      counts.add(kind, userId, 1);
      return new UnitLease(giveBack, kind, userId);
    },
    heldLocally: (kind, userId) => counts.get(kind, userId),
    async close() {
      clearInterval(heartbeat);
      redis.off('ready', onReady);
      // Give the units back now rather than when the alive key expires.
      const pipeline = redis.pipeline();
      pipeline.del(keys.instanceAlive(holder));
      for (const { kind, userId } of counts.entries()) pipeline.hdel(keys.quota(kind, userId), holder);
      await pipeline.exec().catch(() => undefined);
    },
  };
}
