import { createClient as createSseClient } from 'graphql-sse';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { topics } from '../src/events/topics.js';
import { createRedisUserQuotas } from '../src/protection/user-quotas.js';
import { createRedisConnections } from '../src/redis/connections.js';
import { backendEnv, BACKENDS, sharedRedis } from './support/backends.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { PRICE_UPDATED, priceInput, PUBLISH_PRICE } from './support/operations.js';
import { randomPrefix, startRedis } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record, type Recording } from './support/ws-client.js';

const REVOKE = 'mutation Revoke($userId: ID!, $reason: String) { revokeSessions(userId: $userId, reason: $reason) { userId revokedAt reason } }';

/** The code of a refused operation, whether it came as a result or as a protocol error. */
function codeOf(recording: Recording): unknown {
  const fromResult = recording.results[0]?.errors?.[0]?.extensions?.['code'];
  if (fromResult) return fromResult;
  const failure = recording.failure.value as Array<{ extensions?: Record<string, unknown> }> | undefined;
  return Array.isArray(failure) ? failure[0]?.extensions?.['code'] : undefined;
}

async function tripsOf(gateway: TestGateway, limit: string): Promise<number> {
  return (await gateway.app.metrics.limitTrips.get()).values.find((value) => value.labels.limit === limit)?.value ?? 0;
}

/** A bystander on the same instance: subscribes to a hotel and must receive every price. */
async function bystanderOn(gateway: TestGateway, hotelId: string) {
  const connection = connectWs(gateway.wsUrl, await tokenFor('bystander'));
  const prices = record(connection.client, PRICE_UPDATED, { hotelId });
  await gateway.waitForSubscribers(topics.hotelPrices(hotelId));
  let sent = 0;
  return {
    async publish() {
      sent++;
      await gateway.publish(PUBLISH_PRICE, priceInput(hotelId, sent));
    },
    async expectAllReceived() {
      await prices.waitForResults(sent);
      expect(prices.results.map((result) => (result.data?.['priceUpdated'] as { price: { amountMinor: number } }).price.amountMinor)).toEqual(
        Array.from({ length: sent }, (_, index) => index + 1),
      );
      expect(connection.closes).toEqual([]);
    },
  };
}

describe.each(BACKENDS)('connections per user (%s)', (backend) => {
  it('closes a connection over WS_MAX_CONNECTIONS_PER_USER with 4291; others are unaffected; a closed one frees a unit', async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), WS_MAX_CONNECTIONS_PER_USER: '2' });
    const bystander = await bystanderOn(gateway, 'hotel-conn');
    const token = await tokenFor('alice');
    const first = connectWs(gateway.wsUrl, token);
    const second = connectWs(gateway.wsUrl, token);
    record(first.client, PRICE_UPDATED, { hotelId: 'a1' });
    record(second.client, PRICE_UPDATED, { hotelId: 'a2' });
    await Promise.all([first.waitForConnected(), second.waitForConnected()]);
    await bystander.publish();

    const third = connectWs(gateway.wsUrl, token);
    record(third.client, PRICE_UPDATED, { hotelId: 'a3' });
    const closed = await third.waitForClose();
    expect(closed.code).toBe(4291);
    expect(closed.reason).toContain('at most 2 per user');
    expect(await tripsOf(gateway, 'connections_per_user')).toBe(1);
    await bystander.publish();

    await first.client.dispose();
    const fourth = connectWs(gateway.wsUrl, token);
    const prices = record(fourth.client, PRICE_UPDATED, { hotelId: 'a4' });
    await waitUntil(async () => {
      // The unit comes back when the server has seen the close; retry until it has.
      if (fourth.closes.length === 0) return fourth.waitForConnected().then(() => true);
      return false;
    }, 'a fourth connection to be accepted');
    await gateway.waitForSubscribers(topics.hotelPrices('a4'));
    await gateway.publish(PUBLISH_PRICE, priceInput('a4'));
    await prices.waitForResults(1);
    await bystander.expectAllReceived();
  });
});

describe('connections per user across instances (Redis)', () => {
  it('counts a user’s connections on every instance', async () => {
    const env = { ...(await backendEnv('redis')), WS_MAX_CONNECTIONS_PER_USER: '2' };
    const a = await startGateway({ ...env, INSTANCE_ID: 'a' });
    const b = await startGateway({ ...env, INSTANCE_ID: 'b' });
    const token = await tokenFor('carol');
    const onA = connectWs(a.wsUrl, token);
    const onB = connectWs(b.wsUrl, token);
    record(onA.client, PRICE_UPDATED, { hotelId: 'c1' });
    record(onB.client, PRICE_UPDATED, { hotelId: 'c2' });
    await Promise.all([onA.waitForConnected(), onB.waitForConnected()]);

    const refused = connectWs(a.wsUrl, token);
    record(refused.client, PRICE_UPDATED, { hotelId: 'c3' });
    expect((await refused.waitForClose()).code).toBe(4291);

    await onB.client.dispose();
    await waitUntil(() => b.app.webSockets.connectionCount() === 0, 'instance b to see the close');
    await waitUntil(async () => {
      const retry = connectWs(a.wsUrl, token);
      record(retry.client, PRICE_UPDATED, { hotelId: 'c4' });
      await waitUntil(() => retry.closes.length > 0 || a.app.webSockets.connectionCount() === 2, 'an answer');
      return retry.closes.length === 0;
    }, 'a unit freed on instance b to be usable on instance a');
  });

  it('writes its counts back when Redis comes back empty', async () => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), WS_MAX_CONNECTIONS_PER_USER: '1' });
    const token = await tokenFor('olga');
    const first = connectWs(gateway.wsUrl, token);
    record(first.client, PRICE_UPDATED, { hotelId: 'o1' });
    await first.waitForConnected();
    await redis.kill();
    await redis.restart();
    await waitUntil(() => gateway.app.config.redis.url !== undefined && gateway.app.stats()['ready'] === true, 'the gateway to be ready again', 10_000);
    const second = connectWs(gateway.wsUrl, token);
    record(second.client, PRICE_UPDATED, { hotelId: 'o2' });
    expect((await second.waitForClose()).code).toBe(4291);
  });

  it('reclaims the units of an instance that died without giving them back', async () => {
    const redis = await sharedRedis();
    const prefix = randomPrefix();
    const logger = pino({ level: 'silent' });
    const doomedConnections = createRedisConnections(redis.url, logger);
    const survivorConnections = createRedisConnections(redis.url, logger);
    onTestFinished(() => survivorConnections.close());
    const doomed = createRedisUserQuotas({ connections: doomedConnections, prefix, logger, aliveMs: 300 });
    const survivor = createRedisUserQuotas({ connections: survivorConnections, prefix, logger, aliveMs: 300 });
    onTestFinished(() => survivor.close());
    await waitUntil(() => doomedConnections.isReady() && survivorConnections.isReady(), 'redis');

    expect(await doomed.acquire('connections', 'dave', 1)).toBeDefined();
    expect(await survivor.acquire('connections', 'dave', 1)).toBeUndefined();
    // The process dies: no release, no more keep-alives.
    doomedConnections.commands.disconnect();
    doomedConnections.subscriber.disconnect();
    await waitUntil(async () => (await survivor.acquire('connections', 'dave', 1)) !== undefined, 'the dead holder’s unit to be reclaimed', 3_000);
    const inspector = new Redis(redis.url);
    onTestFinished(() => void inspector.quit());
    expect(await inspector.hlen(`${prefix}quota:connections:dave`)).toBe(1);
  });
});

describe.each(BACKENDS)('subscriptions per user (%s)', (backend) => {
  it('refuses a subscription over MAX_SUBSCRIPTIONS_PER_USER across connections and SSE with LIMIT_EXCEEDED; ending one frees a unit', async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), MAX_SUBSCRIPTIONS_PER_USER: '3' });
    const bystander = await bystanderOn(gateway, 'hotel-subs');
    const token = await tokenFor('erin');
    const one = connectWs(gateway.wsUrl, token);
    const two = connectWs(gateway.wsUrl, token);
    const held = [record(one.client, PRICE_UPDATED, { hotelId: 'e1' }), record(one.client, PRICE_UPDATED, { hotelId: 'e2' })];
    await gateway.waitForSubscribers(topics.hotelPrices('e2'));

    // The third unit over SSE, the fourth over the second socket.
    const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    onTestFinished(() => sse.dispose());
    const sseResults: unknown[] = [];
    const stopSse = sse.subscribe({ query: PRICE_UPDATED, variables: { hotelId: 'e3' } }, { next: (value) => void sseResults.push(value), error: () => undefined, complete: () => undefined });
    await gateway.waitForSubscribers(topics.hotelPrices('e3'));
    await bystander.publish();

    const refused = record(two.client, PRICE_UPDATED, { hotelId: 'e4' });
    await refused.waitForEnd();
    expect(codeOf(refused)).toBe('LIMIT_EXCEEDED');
    expect(refused.results[0]?.errors?.[0]?.extensions?.['limit']).toBe('subscriptions_per_user');
    expect(await tripsOf(gateway, 'subscriptions_per_user')).toBe(1);
    // (The lazy client closes its socket with 1000 once its only operation ended: not the server.)
    expect(two.closes.map((close) => close.code).filter((code) => code !== 1000)).toEqual([]);

    // The held ones keep flowing.
    await gateway.publish(PUBLISH_PRICE, priceInput('e1'));
    await held[0]?.waitForResults(1);

    stopSse();
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.hotelPrices('e3')) === 0, 'the SSE subscription to end');
    const accepted = record(two.client, PRICE_UPDATED, { hotelId: 'e5' });
    await gateway.waitForSubscribers(topics.hotelPrices('e5'));
    await gateway.publish(PUBLISH_PRICE, priceInput('e5'));
    await accepted.waitForResults(1);
    await bystander.publish();
    await bystander.expectAllReceived();
  });
});

describe('token expiry', () => {
  it('warns with a protocol ping before the token expires, then closes with 4403; a bystander is unaffected', async () => {
    const gateway = await startGateway({ TOKEN_EXPIRY_WARNING_SECONDS: '2' });
    const bystander = await bystanderOn(gateway, 'hotel-expiry');
    const expiring = connectWs(gateway.wsUrl, await tokenFor('frank', ['user'], { expiresInSeconds: 4 }));
    const prices = record(expiring.client, PRICE_UPDATED, { hotelId: 'hotel-expiry' });
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-expiry'), 2);
    const connectedAt = Date.now();

    await waitUntil(() => expiring.pings.length > 0, 'the expiry warning', 4_000);
    const warning = expiring.pings[0] as { reason: string; expiresAt: string };
    expect(warning.reason).toBe('token_expiring');
    const expiresAt = Date.parse(warning.expiresAt);
    // Warned about two seconds ahead (iat/exp have a resolution of one second).
    expect(expiresAt - Date.now()).toBeGreaterThan(500);
    expect(expiring.closes).toEqual([]);
    await bystander.publish();

    const closed = await expiring.waitForClose();
    expect(closed).toEqual({ code: 4403, reason: 'Unauthenticated: Token has expired' });
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    expect(Date.now() - connectedAt).toBeLessThan(8_000);
    await bystander.publish();
    await bystander.expectAllReceived();
    // The one price published while it was connected; the subscription itself is not completed
    // (the connection closes as a whole, so a reconnecting client resubscribes).
    expect(prices.results).toHaveLength(1);
    expect(prices.results[0]?.data?.['priceUpdated']).toBeDefined();
  });
});

describe.each(BACKENDS)('session revocation (%s)', (backend) => {
  it('ends the user’s WebSocket and SSE sessions, refuses the old token, accepts a fresh one', async () => {
    const gateway = await startGateway(await backendEnv(backend));
    const bystander = await bystanderOn(gateway, 'hotel-revoke');
    const oldToken = await tokenFor('grace');
    const socket = connectWs(gateway.wsUrl, oldToken);
    record(socket.client, PRICE_UPDATED, { hotelId: 'g1' });
    const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${oldToken}` }, retryAttempts: 0 });
    onTestFinished(() => sse.dispose());
    const sseResults: Array<{ errors?: Array<{ extensions?: Record<string, unknown> }> }> = [];
    let sseEnded = false;
    sse.subscribe(
      { query: PRICE_UPDATED, variables: { hotelId: 'g2' } },
      { next: (value) => void sseResults.push(value as never), error: () => (sseEnded = true), complete: () => (sseEnded = true) },
    );
    await gateway.waitForSubscribers(topics.hotelPrices('g1'));
    await gateway.waitForSubscribers(topics.hotelPrices('g2'));
    await bystander.publish();

    // Tokens have a resolution of one second: the old one must be from an earlier second.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const revoked = await gateway.publish(REVOKE, { userId: 'grace', reason: 'password changed' });
    expect(revoked.data?.['revokeSessions']).toMatchObject({ userId: 'grace', reason: 'password changed' });

    const closed = await socket.waitForClose();
    expect(closed.code).toBe(4403);
    expect(closed.reason).toBe('Unauthenticated: Session was revoked (password changed)');
    await waitUntil(() => sseEnded, 'the SSE stream to end');
    expect(sseResults.at(-1)?.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'revoked' });

    const again = connectWs(gateway.wsUrl, oldToken);
    record(again.client, PRICE_UPDATED, { hotelId: 'g3' });
    expect((await again.waitForClose()).reason).toMatch(/^Unauthenticated: Session was revoked/);
    const overHttp = await gateway.http('query { viewer { id } }', {}, oldToken);
    expect(overHttp.status).toBe(401);
    expect(overHttp.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'revoked' });

    const fresh = connectWs(gateway.wsUrl, await tokenFor('grace'));
    const prices = record(fresh.client, PRICE_UPDATED, { hotelId: 'g4' });
    await gateway.waitForSubscribers(topics.hotelPrices('g4'));
    await gateway.publish(PUBLISH_PRICE, priceInput('g4'));
    await prices.waitForResults(1);
    await bystander.publish();
    await bystander.expectAllReceived();
  });

  it('closes with a reason cut to the protocol limit of 123 bytes, however long the given reason', async () => {
    const gateway = await startGateway(await backendEnv(backend));
    const socket = connectWs(gateway.wsUrl, await tokenFor('ulrich'));
    record(socket.client, PRICE_UPDATED, { hotelId: 'u1' });
    await socket.waitForConnected();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const reason = 'Ihr Passwort wurde geändert; bitte melden Sie sich auf allen Geräten erneut an – danke für Ihr Verständnis, Ihr Team';
    await gateway.publish(REVOKE, { userId: 'ulrich', reason });
    const closed = await socket.waitForClose();
    expect(closed.code).toBe(4403);
    expect(Buffer.byteLength(closed.reason)).toBeLessThanOrEqual(123);
    expect(closed.reason).toMatch(/^Unauthenticated: Session was revoked \(Ihr Passwort wurde geändert.*…$/);
    expect((await fetch(gateway.httpUrl.replace('/graphql', '/health'))).ok).toBe(true);
  });

  it('is for services only', async () => {
    const gateway = await startGateway(await backendEnv(backend));
    const answer = await gateway.http(REVOKE, { userId: 'someone-else' }, await tokenFor('mallory'));
    expect(answer.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });
});

describe('session revocation across instances (Redis)', () => {
  it('ends the user’s connections on every instance, whether revoked by mutation or straight on Redis', async () => {
    const env = await backendEnv('redis');
    const a = await startGateway({ ...env, INSTANCE_ID: 'a' });
    const b = await startGateway({ ...env, INSTANCE_ID: 'b' });
    const token = await tokenFor('heidi');
    const onA = connectWs(a.wsUrl, token);
    const onB = connectWs(b.wsUrl, token);
    record(onA.client, PRICE_UPDATED, { hotelId: 'h1' });
    record(onB.client, PRICE_UPDATED, { hotelId: 'h2' });
    await Promise.all([onA.waitForConnected(), onB.waitForConnected()]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await a.publish(REVOKE, { userId: 'heidi' });
    expect((await onA.waitForClose()).code).toBe(4403);
    expect((await onB.waitForClose()).reason).toBe('Unauthenticated: Session was revoked (revoked)');

    // A service without the gateway's API: SET the key, then PUBLISH the announcement.
    const ivanToken = await tokenFor('ivan');
    const ivan = connectWs(b.wsUrl, ivanToken);
    record(ivan.client, PRICE_UPDATED, { hotelId: 'i1' });
    await ivan.waitForConnected();
    const service = new Redis(env['REDIS_URL'] as string);
    onTestFinished(() => void service.quit());
    const prefix = env['REDIS_PREFIX'] as string;
    // Garbage on the channel is dropped and counted, and breaks nothing.
    await service.publish(`${prefix}sessions:revoked`, '{"userId": 42}');
    await service.publish(`${prefix}sessions:revoked`, 'not json');
    await waitUntil(
      async () => (await b.app.metrics.eventsDropped.get()).values.filter((value) => value.labels.source === 'sessions').reduce((sum, value) => sum + value.value, 0) === 2,
      'the invalid revocations to be counted',
    );
    expect(ivan.closes).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const revokedAt = Date.now();
    await service.multi().set(`${prefix}sessions-revoked:ivan`, String(revokedAt), 'PX', 60_000).publish(`${prefix}sessions:revoked`, JSON.stringify({ userId: 'ivan', revokedAt, reason: 'admin' })).exec();
    expect((await ivan.waitForClose()).reason).toBe('Unauthenticated: Session was revoked (admin)');
    const retry = connectWs(a.wsUrl, ivanToken);
    record(retry.client, PRICE_UPDATED, { hotelId: 'i2' });
    expect((await retry.waitForClose()).code).toBe(4403);
  });
});
