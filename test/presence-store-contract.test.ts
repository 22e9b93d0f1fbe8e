import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createMemoryPresenceState, createMemoryPresenceStore } from '../src/presence/memory-presence-store.js';
import { conversationScope, userScope, type PresenceHold, type PresenceScope, type PresenceStore } from '../src/presence/presence-store.js';
import { createRedisPresenceStore } from '../src/presence/redis-presence-store.js';
import { PresenceBatchError } from '../src/presence/presence-store.js';
import { redisKeys } from '../src/redis/keys.js';
import { BACKENDS, sharedRedis, type BackendName } from './support/backends.js';
import { randomPrefix } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';

/**
 * One contract, two implementations: what every PresenceStore must do (src/presence/presence-store.ts).
 * Several instances are several stores over one shared presence: one memory state, or one Redis
 * with one key prefix (each store on its own connection, as separate processes would be).
 */

/** The long default TTL: nothing expires during a test unless it asks for a short one. */
const LONG_TTL_MS = 60_000;

interface SharedPresence {
  /** A store for one more instance over this presence. */
  instance(options?: { ttlMs?: number }): Promise<PresenceStore>;
  /** The store loses everything it held: Redis restarts; the memory state is emptied. */
  loseEverything(): Promise<void>;
  /** What is stored for this presence: Redis keys under the prefix, or memory scopes. */
  stored(): Promise<number>;
  /** Requests written by the store's connection so far, each one round trip (Redis only). */
  roundTrips(store: PresenceStore): number | undefined;
  /** Redis only: a plain client and the key names. */
  readonly redis?: { inspector: Redis; keys: ReturnType<typeof redisKeys> };
}

async function sharedPresence(backend: BackendName): Promise<SharedPresence> {
  let instances = 0;
  if (backend === 'memory') {
    const state = createMemoryPresenceState();
    return {
      async instance({ ttlMs = LONG_TTL_MS } = {}) {
        return createMemoryPresenceStore({ instanceId: `instance-${++instances}`, ttlMs, state });
      },
      async loseEverything() {
        state.scopes.clear();
      },
      stored: async () => state.scopes.size,
      roundTrips: () => undefined,
    };
  }

  const server = await sharedRedis();
  const prefix = randomPrefix();
  const inspector = server.client();
  const connections: Redis[] = [];
  const writes = new WeakMap<PresenceStore, () => number>();
  onTestFinished(() => {
    for (const connection of connections) connection.disconnect();
  });
  const ready = () => waitUntil(() => connections.every((connection) => connection.status === 'ready') && inspector.status === 'ready', 'redis connections');
  return {
    async instance({ ttlMs = LONG_TTL_MS } = {}) {
      const connection = new Redis({ port: server.port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 50, disableClientInfo: true });
      connection.on('error', () => undefined);
      connections.push(connection);
      await ready();
      const store = createRedisPresenceStore({ redis: connection, prefix, instanceId: `instance-${++instances}`, ttlMs });
      // Every request ioredis sends (one command, or one whole pipeline) is one write to the socket.
      const socket = connection.stream as Socket;
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      let count = 0;
      socket.write = ((...args: unknown[]) => {
        count += 1;
        return write(...args);
      }) as typeof socket.write;
      writes.set(store, () => count);
      return store;
    },
    async loseEverything() {
      await server.kill();
      await server.restart();
      await ready();
    },
    stored: async () => (await inspector.keys(`${prefix}*`)).length,
    roundTrips: (store) => writes.get(store)?.(),
    redis: { inspector, keys: redisKeys(prefix) },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const sorted = (values: Iterable<string>) => [...values].sort();
const byKey = (holds: readonly PresenceHold[]) => holds.map(({ scope, userId }) => `${scope} ${userId}`).sort();

const chat = conversationScope('c1');

describe.each(BACKENDS)('PresenceStore contract: %s', (backend) => {
  it('reports a user as having become present only on the first hold of any instance', async () => {
    const presence = await sharedPresence(backend);
    const a = await presence.instance();
    const b = await presence.instance();
    expect(await a.hold(chat, 'alice')).toBe(true);
    expect(await a.hold(chat, 'alice')).toBe(false);
    expect(await b.hold(chat, 'alice')).toBe(false);
    // Per user and per scope.
    expect(await b.hold(chat, 'bob')).toBe(true);
    expect(await b.hold(conversationScope('c2'), 'alice')).toBe(true);
    expect(await a.hold(userScope('alice'), 'alice')).toBe(true);
  });

  it('reports a user as gone when the last instance holding them lets go, once', async () => {
    const presence = await sharedPresence(backend);
    const a = await presence.instance();
    const b = await presence.instance();
    await a.hold(chat, 'alice');
    await b.hold(chat, 'alice');
    expect(await a.release(chat, 'alice')).toBe(false);
    // Again: this instance holds no entry any more.
    expect(await a.release(chat, 'alice')).toBeUndefined();
    expect(sorted(await a.present(chat))).toEqual(['alice']);
    expect(await b.release(chat, 'alice')).toBe(true);
    expect(await b.release(chat, 'alice')).toBeUndefined();
    expect(await a.present(chat)).toEqual([]);
    // Letting go of what this instance never held changes nothing for the instance holding it.
    await a.hold(chat, 'bob');
    expect(await b.release(chat, 'bob')).toBeUndefined();
    expect(sorted(await b.present(chat))).toEqual(['bob']);
    expect(await a.release(chat, 'bob')).toBe(true);
    expect(await a.release(conversationScope('never'), 'nobody')).toBeUndefined();
    // Nothing is left behind once everybody let go.
    expect(await presence.stored()).toBe(0);
  });

  it('lists the users present in a scope, each once however many instances hold them', async () => {
    const presence = await sharedPresence(backend);
    const a = await presence.instance();
    const b = await presence.instance();
    await a.hold(chat, 'alice');
    await b.hold(chat, 'alice');
    await b.hold(chat, 'bob');
    await a.hold(conversationScope('c2'), 'carol');
    await a.hold(userScope('dave'), 'dave');
    expect(sorted(await a.present(chat))).toEqual(['alice', 'bob']);
    expect(sorted(await b.present(chat))).toEqual(['alice', 'bob']);
    expect(await a.present(conversationScope('c2'))).toEqual(['carol']);
    expect(await a.present(conversationScope('empty'))).toEqual([]);
    expect(await b.present(userScope('dave'))).toEqual(['dave']);
  });

  it('tells which users are online: a live entry in their user scope, on any instance', async () => {
    const presence = await sharedPresence(backend);
    const a = await presence.instance();
    const b = await presence.instance();
    await a.hold(userScope('alice'), 'alice');
    await b.hold(userScope('bob'), 'bob');
    await a.hold(chat, 'carol'); // present in a conversation is not online
    expect(sorted(await a.online(['alice', 'bob', 'carol', 'dave', 'alice']))).toEqual(['alice', 'bob']);
    expect(await b.online([])).toEqual(new Set());
    await b.release(userScope('bob'), 'bob');
    expect(sorted(await a.online(['alice', 'bob']))).toEqual(['alice']);
  });

  it("expires a crashed instance's entries: no longer present, and a sweep reports each user gone exactly once", async () => {
    const presence = await sharedPresence(backend);
    const crashed = await presence.instance({ ttlMs: 500 });
    const live = await presence.instance();
    const other = await presence.instance();
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    await crashed.refresh(users.flatMap((userId) => [{ scope: chat, userId }, { scope: userScope(userId), userId }]));
    await live.hold(chat, 'user-0'); // also held by a live instance: never gone
    expect((await live.present(chat)).length).toBe(200);

    await sleep(700); // `crashed` stops refreshing
    expect(await live.present(chat)).toEqual(['user-0']);
    expect(await live.online(users)).toEqual(new Set());

    // Two instances sweep at once: every gone user goes to one of them.
    const scopes: PresenceScope[] = [chat, ...users.map(userScope)];
    const [first, second] = await Promise.all([live.sweep(scopes), other.sweep(scopes)]);
    const gone = byKey([...first, ...second]);
    const expected = [...users.slice(1).map((userId) => `${chat} ${userId}`), ...users.map((userId) => `${userScope(userId)} ${userId}`)].sort();
    expect(gone).toEqual(expected);
    expect(await live.sweep(scopes)).toEqual([]);
    expect(await live.present(chat)).toEqual(['user-0']);

    // Gone for good: holding again makes them present again.
    expect(await other.hold(chat, 'user-1')).toBe(true);
    expect(await other.hold(chat, 'user-0')).toBe(false);
  });

  it("hands a stopping instance's entries over: they expire within the given time, a user held elsewhere meanwhile stays present", async () => {
    const presence = await sharedPresence(backend);
    const stopping = await presence.instance();
    const survivor = await presence.instance();
    await stopping.refresh([{ scope: chat, userId: 'moves' }, { scope: chat, userId: 'leaves' }]);
    await stopping.handOver([{ scope: chat, userId: 'moves' }, { scope: chat, userId: 'leaves' }, { scope: chat, userId: 'never-held' }], 300);
    // Still present within the hand-over time; the one who reconnects is held by the survivor.
    expect(sorted(await survivor.present(chat))).toEqual(['leaves', 'moves']);
    expect(await survivor.hold(chat, 'moves')).toBe(false);
    await sleep(450);
    expect(await survivor.present(chat)).toEqual(['moves']);
    expect(byKey(await survivor.sweep([chat]))).toEqual([`${chat} leaves`]);
    expect(await survivor.present(chat)).toEqual(['moves']);
    // The survivor letting go later is the user's LEFT.
    expect(await survivor.release(chat, 'moves')).toBe(true);
  });

  it('counts an expired entry until it is swept, so "became present" and "gone" alternate', async () => {
    const presence = await sharedPresence(backend);
    const crashed = await presence.instance({ ttlMs: 500 });
    const live = await presence.instance();
    expect(await crashed.hold(chat, 'alice')).toBe(true);
    await sleep(700);
    expect(await live.present(chat)).toEqual([]);
    // Back on another instance before any sweep: never reported gone, so not present "again".
    expect(await live.hold(chat, 'alice')).toBe(false);
    expect(await live.sweep([chat])).toEqual([]);
    expect(await live.present(chat)).toEqual(['alice']);
    expect(await live.release(chat, 'alice')).toBe(true);
  });

  it('keeps refreshed entries alive past the TTL, and re-creates them once the store lost them', async () => {
    const presence = await sharedPresence(backend);
    const ttlMs = 600;
    const a = await presence.instance({ ttlMs });
    const sweeper = await presence.instance();
    const holds: PresenceHold[] = [
      { scope: chat, userId: 'alice' },
      { scope: chat, userId: 'bob' },
      { scope: userScope('alice'), userId: 'alice' },
    ];
    expect(byKey(await a.refresh(holds))).toEqual(byKey(holds));
    const until = Date.now() + 2.5 * ttlMs;
    while (Date.now() < until) {
      await sleep(100);
      expect(await a.refresh(holds)).toEqual([]);
    }
    expect(await sweeper.sweep([chat, userScope('alice')])).toEqual([]);
    expect(sorted(await sweeper.present(chat))).toEqual(['alice', 'bob']);
    expect(await sweeper.online(['alice'])).toEqual(new Set(['alice']));

    await presence.loseEverything();
    expect(await sweeper.present(chat)).toEqual([]);
    expect(byKey(await a.refresh(holds))).toEqual(byKey(holds));
    expect(sorted(await sweeper.present(chat))).toEqual(['alice', 'bob']);
    expect(await a.refresh(holds)).toEqual([]);
  });

  it('refuses ids that could break a key or an entry, as a TypeError, before changing anything', async () => {
    const presence = await sharedPresence(backend);
    const a = await presence.instance();
    for (const userId of ['a|b', '{a}', 'a}', '']) {
      await expect(a.hold(chat, userId)).rejects.toThrow(TypeError);
      await expect(a.release(chat, userId)).rejects.toThrow(TypeError);
      await expect(a.online(['fine', userId])).rejects.toThrow(TypeError);
    }
    for (const scope of ['conversation:a|b', 'conversation:{a}', 'user:', 'room:a'] as PresenceScope[]) {
      await expect(a.hold(scope, 'alice')).rejects.toThrow(TypeError);
      await expect(a.present(scope)).rejects.toThrow(TypeError);
      await expect(a.sweep([chat, scope])).rejects.toThrow(TypeError);
    }
    await expect(a.refresh([{ scope: chat, userId: 'alice' }, { scope: chat, userId: 'bob|instance-2' }])).rejects.toThrow(TypeError);
    expect(await a.present(chat)).toEqual([]);
    expect(() => createMemoryPresenceStore({ instanceId: 'a|b', ttlMs: 1_000 })).toThrow(TypeError);
    expect(() => createRedisPresenceStore({ redis: closedConnection(), prefix: 'unused:', instanceId: '{a}', ttlMs: 1_000 })).toThrow(TypeError);
  });

  it('holds a 1,000-user conversation over two instances, and refreshes 5,000 holds in a few round trips', async () => {
    const presence = await sharedPresence(backend);
    const a = await presence.instance();
    const b = await presence.instance();
    const users = Array.from({ length: 1_000 }, (_, i) => `user-${i}`);
    const scopes = [userScope, ...['c-1', 'c-2', 'c-3', 'c-4'].map((id) => () => conversationScope(id))];
    const holds = users.flatMap((userId) => scopes.map((scope) => ({ scope: scope(userId), userId })));
    expect(holds.length).toBe(5_000);

    const before = presence.roundTrips(a);
    expect((await a.refresh(holds)).length).toBe(5_000);
    expect(await a.refresh(holds)).toEqual([]);
    if (before !== undefined) expect(presence.roundTrips(a)! - before).toBe(2 * 5);

    // One conversation, its users held by two instances (overlapping in the middle).
    const big = conversationScope('big');
    const onA = users.slice(0, 600).map((userId) => ({ scope: big, userId }));
    const onB = users.slice(400).map((userId) => ({ scope: big, userId }));
    expect((await a.refresh(onA)).length).toBe(600);
    expect(byKey(await b.refresh(onB))).toEqual(byKey(onB.slice(200)));
    expect(sorted(await b.present(big))).toEqual(sorted(users));
    expect((await b.present(conversationScope('c-3'))).length).toBe(1_000);

    const beforeOnline = presence.roundTrips(b);
    expect((await b.online([...users, 'nobody'])).size).toBe(1_000);
    if (beforeOnline !== undefined) expect(presence.roundTrips(b)! - beforeOnline).toBe(1);
  });
});

describe('PresenceStore over Redis', () => {
  it('gives both keys of a scope a TTL of twice the hold TTL, so an abandoned scope vanishes', async () => {
    const presence = await sharedPresence('redis');
    const { inspector, keys } = presence.redis!;
    const crashed = await presence.instance({ ttlMs: 300 });
    await crashed.hold(chat, 'alice');
    for (const key of [keys.presenceEntries(chat), keys.presenceUsers(chat)]) {
      const ttl = await inspector.pttl(key);
      expect(ttl).toBeGreaterThan(300);
      expect(ttl).toBeLessThanOrEqual(600);
    }
    expect(await presence.stored()).toBe(2);
    // Nobody refreshes, releases or sweeps: Redis forgets the scope by itself.
    await waitUntil(async () => (await presence.stored()) === 0, 'the abandoned scope to expire');
    expect(await inspector.exists(keys.presenceEntries(chat), keys.presenceUsers(chat))).toBe(0);
  });

  it('keeps both keys of a scope in one Cluster slot: their hash tag is the scope', async () => {
    const keys = redisKeys(randomPrefix());
    /** What Redis Cluster hashes: between the first `{` and the next `}`, when not empty. */
    const hashTag = (key: string) => {
      const open = key.indexOf('{');
      const close = key.indexOf('}', open + 1);
      return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
    };
    for (const scope of [chat, userScope('alice')]) {
      expect(hashTag(keys.presenceEntries(scope))).toBe(scope);
      expect(hashTag(keys.presenceUsers(scope))).toBe(scope);
    }
  });

  it('rejects when Redis fails, and reports what a partly failed batch did', async () => {
    const presence = await sharedPresence('redis');
    const { inspector, keys } = presence.redis!;
    const a = await presence.instance();
    const broken = conversationScope('broken');
    await inspector.set(keys.presenceEntries(broken), 'not a sorted set');
    const holds: PresenceHold[] = [
      { scope: chat, userId: 'alice' },
      { scope: broken, userId: 'alice' },
      { scope: chat, userId: 'bob' },
    ];
    const refreshed = await a.refresh(holds).catch((error: unknown) => error);
    expect(refreshed).toBeInstanceOf(PresenceBatchError);
    expect(byKey((refreshed as PresenceBatchError).completed)).toEqual(byKey([holds[0]!, holds[2]!]));
    expect((refreshed as PresenceBatchError).failed).toBe(1);
    expect(sorted(await a.present(chat))).toEqual(['alice', 'bob']);

    const swept = await a.sweep([broken, chat]).catch((error: unknown) => error);
    expect(swept).toBeInstanceOf(PresenceBatchError);
    await expect(a.present(broken)).rejects.toThrow(/WRONGTYPE/);

    // A connection that is gone: every operation rejects (and nothing is left unhandled).
    const down = createRedisPresenceStore({ redis: closedConnection(), prefix: 'unused:', instanceId: 'down', ttlMs: 1_000 });
    await expect(down.hold(chat, 'alice')).rejects.toThrow();
    await expect(down.release(chat, 'alice')).rejects.toThrow();
    await expect(down.present(chat)).rejects.toThrow();
    await expect(down.online(['alice'])).rejects.toThrow();
    const failed = await down.refresh(holds.slice(0, 1)).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(PresenceBatchError);
    expect((failed as PresenceBatchError).completed).toEqual([]);
    await expect(down.sweep([chat])).rejects.toBeInstanceOf(PresenceBatchError);
  });
});

/** A connection already closed for good: commands reject at once. */
function closedConnection(): Redis {
  const connection = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  connection.on('error', () => undefined);
  connection.disconnect();
  return connection;
}
