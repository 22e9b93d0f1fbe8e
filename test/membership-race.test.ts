import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createRedisDirectory } from '../src/directory/redis-directory.js';
import { topics } from '../src/events/topics.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { createRedisConnections, type RedisConnections } from '../src/redis/connections.js';
import { redisKeys } from '../src/redis/keys.js';
import { sharedRedis } from './support/backends.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { NEW_MESSAGE, PUBLISH_MESSAGE } from './support/operations.js';
import { randomPrefix, type TestRedis } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/** A Redis directory on its own connections, so a test can hold its commands connection. */
async function redisDirectory(redis: TestRedis, prefix: string) {
  const logger = pino({ level: 'silent' });
  const connections = createRedisConnections(redis.url, logger);
  const directory = createRedisDirectory({ connections, prefix, logger, metrics: createMetrics(), membershipCacheMs: 30_000, chatSessionTtlSeconds: 3_600 });
  onTestFinished(async () => {
    await directory.close();
    await connections.close();
  });
  await waitUntil(() => directory.isReady(), 'the directory to subscribe');
  return { connections, directory };
}

/**
 * Holds back everything sent on the directory's commands connection: a BLPOP on a key nobody
 * pushes to blocks that connection inside Redis, and the commands sent after it wait, unread, in
 * its query buffer until release(). Nothing in the gateway or ioredis is mocked.
 */
async function holdCommands(connections: RedisConnections, inspector: Redis) {
  const id = Number(await connections.commands.client('ID'));
  const gate = `gate:${randomPrefix()}`;
  const blocked = connections.commands.blpop(gate, 0);
  const info = async () => Object.fromEntries(String(await inspector.client('LIST', 'ID', id)).trim().split(' ').map((field) => field.split('=')));
  await waitUntil(async () => (await info())['cmd'] === 'blpop', 'the commands connection to block');
  return {
    /** Resolves once a command sent after the BLPOP has reached Redis and waits there. */
    waitForHeldCommand: () => waitUntil(async () => Number((await info())['qbuf']) > 0, 'a command held behind the gate'),
    async release() {
      await inspector.lpush(gate, 'open');
      await blocked;
    },
  };
}

// The announcements below are published while the set still holds the member, and the set is
// changed afterwards: to the directory that is exactly a SISMEMBER that Redis answered before the
// removal's transaction, whose reply is handled after the removal's announcement.
describe('a membership removal racing a membership read (Redis)', () => {
  it('wins over the SISMEMBER reply that was in flight: the cache and later checks say false', async () => {
    const redis = await sharedRedis();
    const prefix = randomPrefix();
    const keys = redisKeys(prefix);
    const { connections, directory } = await redisDirectory(redis, prefix);
    const inspector = redis.client();
    await inspector.sadd(keys.conversationMembers('c1'), 'alice');

    const gate = await holdCommands(connections, inspector);
    const pending = directory.conversations.isMember('c1', 'alice');
    await gate.waitForHeldCommand();
    let removalHandled = false;
    directory.conversations.watchRemoval('c1', 'alice', () => (removalHandled = true));
    await inspector.publish(keys.membershipChannel(), JSON.stringify({ conversationId: 'c1', removed: ['alice'] }));
    await waitUntil(() => removalHandled, 'the removal to be handled');
    await gate.release();

    // Redis answered `true` (the set still holds alice), but the removal came later.
    expect(await pending).toBe(false);
    // Answered from the cache: Redis itself would still say true.
    expect(await directory.conversations.isMember('c1', 'alice')).toBe(false);
    expect(await inspector.sismember(keys.conversationMembers('c1'), 'alice')).toBe(1);

    await inspector.srem(keys.conversationMembers('c1'), 'alice');
    expect(await directory.conversations.isMember('c1', 'alice')).toBe(false);
  });

  it('ends a subscription whose subscribe-time membership check was in flight when the removal arrived', async () => {
    const redis = await sharedRedis();
    const prefix = randomPrefix();
    const keys = redisKeys(prefix);
    // The gateway's own bus and other Redis users stay free; only membership reads are held.
    const { connections, directory } = await redisDirectory(redis, prefix);
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix }, { directory });
    const inspector = redis.client();
    const topic = topics.conversationMessages('c1');
    await inspector.sadd(keys.conversationMembers('c1'), 'alice', 'bob', 'carol');
    // Bob's stream ending proves the instance handled the announcement; carol stays a member.
    const bob = record(connectWs(gateway.wsUrl, await tokenFor('bob')).client, NEW_MESSAGE, { conversationId: 'c1' });
    const carol = record(connectWs(gateway.wsUrl, await tokenFor('carol')).client, NEW_MESSAGE, { conversationId: 'c1' });
    await gateway.waitForSubscribers(topic, 2);

    const gate = await holdCommands(connections, inspector);
    const alice = record(connectWs(gateway.wsUrl, await tokenFor('alice')).client, NEW_MESSAGE, { conversationId: 'c1' });
    await gate.waitForHeldCommand(); // alice's subscribe-time membership check
    await inspector.publish(keys.membershipChannel(), JSON.stringify({ conversationId: 'c1', removed: ['alice', 'bob'] }));
    await bob.waitForEnd();
    await gate.release();
    await inspector.srem(keys.conversationMembers('c1'), 'alice', 'bob');

    await alice.waitForEnd();
    expect(alice.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    await gateway.publish(PUBLISH_MESSAGE, { input: { messageId: 'm1', conversationId: 'c1', senderId: 'carol', text: 'after the removal' } });
    await carol.waitForResults(1);
    expect(alice.results.filter((result) => result.data?.['newMessage'])).toEqual([]);
    expect(bob.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect(carol.isComplete()).toBe(false);
  });
});
