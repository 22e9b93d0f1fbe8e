import { describe, expect, it, onTestFinished } from 'vitest';
import type { Redis } from 'ioredis';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { PRICE_UPDATED } from './support/operations.js';
import { randomPrefix, startRedis } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

const REVOKE = 'mutation Revoke($userId: ID!) { revokeSessions(userId: $userId) { revokedAt } }';

/** How many GETs the Redis server has run: a token check that asks Redis is one. */
async function getCalls(inspector: Redis): Promise<number> {
  const stats = (await inspector.info('commandstats')) as string;
  return Number(/cmdstat_get:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

async function viewerStatus(gateway: TestGateway, token: string): Promise<unknown> {
  const { body } = await gateway.http('{ viewer { id } }', {}, token);
  return body.errors?.[0]?.extensions?.['reason'] ?? body.data?.['viewer'];
}

describe('the session revocation mirror (Redis)', () => {
  it('answers token checks locally once loaded, including revocations stored before the gateway started', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const inspector = redis.client();
    const prefix = randomPrefix();
    const aliceToken = await tokenFor('alice');
    // Revoked before this instance existed: only the key tells.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await inspector.set(`${prefix}sessions-revoked:alice`, String(Date.now()), 'PX', 60_000);
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix });
    await waitUntil(() => gateway.app.services.revocations.mirrorInSync?.() === true, 'the mirror to be loaded');

    const before = await getCalls(inspector);
    expect(await viewerStatus(gateway, aliceToken)).toBe('revoked');
    const bob = await tokenFor('bob');
    for (let index = 0; index < 5; index++) expect(await viewerStatus(gateway, bob)).toEqual({ id: 'bob' });
    expect(await getCalls(inspector)).toBe(before);
  });

  it('loads again after the subscriber was cut off, ending sessions revoked while announcements could not arrive', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const inspector = redis.client();
    const prefix = randomPrefix();
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix });
    await waitUntil(() => gateway.app.services.revocations.mirrorInSync?.() === true, 'the mirror to be loaded');
    const carolToken = await tokenFor('carol');
    const carol = connectWs(gateway.wsUrl, carolToken);
    record(carol.client, PRICE_UPDATED, { hotelId: 'h1' });
    await carol.waitForConnected();
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    // Cut the gateway's subscriber off and store a revocation it cannot hear of.
    await inspector.client('KILL', 'TYPE', 'pubsub');
    await inspector.set(`${prefix}sessions-revoked:carol`, String(Date.now()), 'PX', 60_000);
    expect((await carol.waitForClose()).code).toBe(4403);
    await waitUntil(() => gateway.app.services.revocations.mirrorInSync?.() === true, 'the mirror to be loaded again');
    expect(await viewerStatus(gateway, carolToken)).toBe('revoked');
  });

  it('is in sync again after Redis restarts, and follows revocations announced after it', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const prefix = randomPrefix();
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix });
    await waitUntil(() => gateway.app.services.revocations.mirrorInSync?.() === true, 'the mirror to be loaded');
    await redis.kill();
    await waitUntil(() => gateway.app.services.revocations.mirrorInSync?.() === false, 'the mirror to know it is out of sync');
    // Out of sync and Redis cannot answer: the token is refused, never let through unchecked.
    expect(await viewerStatus(gateway, await tokenFor('erin'))).toBe('unavailable');
    await redis.restart();
    await waitUntil(() => gateway.app.services.revocations.mirrorInSync?.() === true, 'the mirror to be loaded again', 15_000);

    const daveToken = await tokenFor('dave');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await gateway.publish(REVOKE, { userId: 'dave' });
    await waitUntil(async () => (await viewerStatus(gateway, daveToken)) === 'revoked', 'the announced revocation to be mirrored');
    const inspector = redis.client();
    const before = await getCalls(inspector);
    expect(await viewerStatus(gateway, daveToken)).toBe('revoked');
    expect(await getCalls(inspector)).toBe(before);
  });
});
