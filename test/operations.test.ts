import { Writable } from 'node:stream';
import { createClient as createSseClient } from 'graphql-sse';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { topics } from '../src/events/topics.js';
import { createRedisPublisher } from '../src/sdk/redis-publisher.js';
import { backendEnv } from './support/backends.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { NOTIFICATION_CREATED, PRICE_UPDATED, PRICE_UPDATED_ADMIN_FIELDS, priceInput, PUBLISH_PRICE, VIEWER } from './support/operations.js';
import { openRawSocket } from './support/raw-socket.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/** One sample of a Prometheus text exposition, or 0 when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((pair) => [pair[1], pair[2]]));
    if (Object.entries(labels).every(([key, value]) => found[key] === value) && Object.keys(found).length === Object.keys(labels).length) {
      return Number(match[3]);
    }
  }
  return 0;
}

async function scrape(gateway: TestGateway, token?: string): Promise<string> {
  const response = await fetch(`${gateway.opsUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  expect(response.status).toBe(200);
  return response.text();
}

/** Waits until a scrape satisfies `check` (counters move asynchronously with the sockets). */
async function eventually(gateway: TestGateway, what: string, check: (text: string) => boolean): Promise<string> {
  let text = '';
  await waitUntil(async () => check((text = await scrape(gateway))), what);
  return text;
}

describe('Prometheus metrics on the operator listener', () => {
  it('follow clients connecting, subscribing, receiving, being refused, and invalid events on Redis', async () => {
    const env = await backendEnv('redis');
    const gateway = await startGateway({ ...env, RATE_LIMIT_OPERATIONS: '4' });
    let text = await scrape(gateway);
    expect(sample(text, 'tidings_connections', { transport: 'websocket' })).toBe(0);
    expect(sample(text, 'tidings_redis_up', { connection: 'commands' })).toBe(1);
    expect(sample(text, 'tidings_redis_up', { connection: 'subscriber' })).toBe(1);
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_heap_size_used_bytes');

    // Connect and subscribe.
    const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const bob = connectWs(gateway.wsUrl, await tokenFor('bob'));
    const alicePrices = record(alice.client, PRICE_UPDATED, { hotelId: 'h1' });
    const bobPrices = record(bob.client, PRICE_UPDATED_ADMIN_FIELDS, { hotelId: 'h1' });
    record(bob.client, NOTIFICATION_CREATED, {});
    await gateway.waitForSubscribers(topics.hotelPrices('h1'), 2);
    await gateway.waitForSubscribers(topics.userNotifications('bob'));
    text = await eventually(gateway, 'three subscriptions', (current) => sample(current, 'tidings_subscriptions', { field: 'priceUpdated' }) === 2);
    expect(sample(text, 'tidings_connections', { transport: 'websocket' })).toBe(2);
    expect(sample(text, 'tidings_connected_users')).toBe(2);
    expect(sample(text, 'tidings_subscriptions', { field: 'notificationCreated' })).toBe(1);

    // Receive: a mutation, then a service publishing straight on Redis.
    await gateway.publish(PUBLISH_PRICE, priceInput('h1', 100));
    const redis = new Redis(env['REDIS_URL'] as string);
    onTestFinished(() => void redis.quit());
    await createRedisPublisher({ redis, prefix: env['REDIS_PREFIX'] as string }).publish('priceUpdated', {
      hotelId: 'h1',
      roomType: 'DOUBLE',
      price: { amountMinor: 200, currency: 'EUR' },
    });
    await alicePrices.waitForResults(2);
    await bobPrices.waitForResults(2);
    text = await eventually(gateway, 'four deliveries', (current) => sample(current, 'tidings_events_delivered_total', { field: 'priceUpdated' }) === 4);
    expect(sample(text, 'tidings_events_published_total', { type: 'priceUpdated', source: 'mutation' })).toBe(1);
    expect(sample(text, 'tidings_events_received_total', { type: 'priceUpdated', source: 'gateway' })).toBe(1);
    expect(sample(text, 'tidings_events_received_total', { type: 'priceUpdated', source: 'redis' })).toBe(1);
    expect(sample(text, 'tidings_delivery_latency_seconds_count', { type: 'priceUpdated' })).toBe(2);
    // Bob is no admin: the admin-only fields of both events were withheld from him.
    expect(sample(text, 'tidings_events_dropped_total', { reason: 'unauthorized_field', source: 'priceUpdated' })).toBe(2);

    // An invalid event on a channel somebody listens to.
    await redis.publish(`${env['REDIS_PREFIX']}${topics.hotelPrices('h1')}`, JSON.stringify({ id: 'e1', type: 'priceUpdated', version: 1, occurredAt: new Date().toISOString(), data: { hotelId: 'h1' } }));
    await redis.publish(`${env['REDIS_PREFIX']}${topics.hotelPrices('h1')}`, 'not json');
    text = await eventually(gateway, 'the invalid events', (current) => sample(current, 'tidings_events_dropped_total', { reason: 'invalid_json', source: 'redis' }) === 1);
    expect(sample(text, 'tidings_events_dropped_total', { reason: 'shape', source: 'redis' })).toBe(1);

    // Refused: credentials, then the rate limit.
    const forged = connectWs(gateway.wsUrl, `${await tokenFor('mallory')}x`);
    record(forged.client, PRICE_UPDATED, { hotelId: 'h1' });
    await forged.waitForClose();
    expect((await gateway.http(VIEWER)).status).toBe(401);
    const carol = connectWs(gateway.wsUrl, await tokenFor('carol'));
    const carols = ['c1', 'c2', 'c3', 'c4', 'c5'].map((hotelId) => record(carol.client, PRICE_UPDATED, { hotelId }));
    await carols[4]?.waitForEnd();
    text = await eventually(gateway, 'the rate-limit trip', (current) => sample(current, 'tidings_limit_trips_total', { limit: 'rate_operations' }) === 1);
    expect(sample(text, 'tidings_auth_failures_total', { reason: 'bad_signature', transport: 'websocket' })).toBe(1);
    expect(sample(text, 'tidings_auth_failures_total', { reason: 'missing', transport: 'http' })).toBe(1);
    expect(sample(text, 'tidings_websocket_closes_total', { code: '4403' })).toBe(1);
    // Yoga's Prometheus plugin reports GraphQL phases into the same registry.
    expect(text).toContain('graphql_envelop_phase_validate');

    // Disconnect: the gauges come back down.
    await Promise.all([alice.client.dispose(), bob.client.dispose(), carol.client.dispose()]);
    text = await eventually(gateway, 'no connections', (current) => sample(current, 'tidings_connections', { transport: 'websocket' }) === 0);
    expect(sample(text, 'tidings_connected_users')).toBe(0);
    expect(sample(text, 'tidings_subscriptions', { field: 'priceUpdated' })).toBe(0);
  });

  it('are not served on the client port, and need METRICS_TOKEN when it is set', async () => {
    const gateway = await startGateway({ METRICS_TOKEN: 'scrape-secret-0123456789' });
    expect((await fetch(gateway.httpUrl.replace('/graphql', '/metrics'))).status).toBe(404);
    expect((await fetch(gateway.httpUrl.replace('/graphql', '/stats'))).status).toBe(404);
    const anonymous = await fetch(`${gateway.opsUrl}/metrics`);
    expect(anonymous.status).toBe(401);
    expect((await fetch(`${gateway.opsUrl}/stats`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect(await scrape(gateway, 'scrape-secret-0123456789')).toContain('tidings_connections');
    expect(new URL(gateway.opsUrl).hostname).toBe('127.0.0.1');
  });
});

describe('/stats', () => {
  it('matches a known set of clients on two instances', async () => {
    const env = { ...(await backendEnv('redis')), ALLOW_ANONYMOUS: 'true' };
    const a = await startGateway({ ...env, INSTANCE_ID: 'stats-a' });
    const b = await startGateway({ ...env, INSTANCE_ID: 'stats-b' });

    // On a: alice (user) twice, an admin, an anonymous socket, and bob over SSE.
    const aliceToken = await tokenFor('alice');
    const aliceOne = connectWs(a.wsUrl, aliceToken);
    const aliceTwo = connectWs(a.wsUrl, aliceToken);
    const admin = connectWs(a.wsUrl, await tokenFor('ada', ['user', 'admin']));
    const anonymous = connectWs(a.wsUrl);
    record(aliceOne.client, PRICE_UPDATED, { hotelId: 's1' });
    record(aliceTwo.client, NOTIFICATION_CREATED, {});
    record(admin.client, PRICE_UPDATED_ADMIN_FIELDS, { hotelId: 's1' });
    record(anonymous.client, PRICE_UPDATED, { hotelId: 's2' });
    const sse = createSseClient({ url: a.httpUrl, headers: { authorization: `Bearer ${await tokenFor('bob')}` }, retryAttempts: 0 });
    onTestFinished(() => sse.dispose());
    sse.subscribe({ query: PRICE_UPDATED, variables: { hotelId: 's3' } }, { next: () => undefined, error: () => undefined, complete: () => undefined });
    // On b: carol on two sockets, one subscription each.
    const carolToken = await tokenFor('carol');
    const carolOne = connectWs(b.wsUrl, carolToken);
    const carolTwo = connectWs(b.wsUrl, carolToken);
    record(carolOne.client, PRICE_UPDATED, { hotelId: 's1' });
    record(carolTwo.client, PRICE_UPDATED, { hotelId: 's4' });
    await a.waitForSubscribers(topics.hotelPrices('s1'), 2);
    await a.waitForSubscribers(topics.hotelPrices('s3'));
    await a.waitForSubscribers(topics.userNotifications('alice'));
    await b.waitForSubscribers(topics.hotelPrices('s4'));

    const statsOf = async (gateway: TestGateway) => (await fetch(`${gateway.opsUrl}/stats`)).json() as Promise<Record<string, unknown>>;
    await waitUntil(async () => ((await statsOf(a))['connections'] as { websocket: number }).websocket === 4, 'four sockets on a');
    const onA = await statsOf(a);
    expect(onA).toMatchObject({
      instanceId: 'stats-a',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      ready: true,
      pubsub: 'redis',
      redis: { commands: 'ready', subscriber: 'ready' },
      connections: { websocket: 4, sse: 1 },
      uniqueUsers: 3,
      usersByRole: { user: 3, admin: 1, anonymous: 1 },
      subscriptions: { notificationCreated: 1, priceUpdated: 4 },
    });
    expect(onA['uptimeSeconds']).toEqual(expect.any(Number));
    expect(await statsOf(b)).toMatchObject({
      instanceId: 'stats-b',
      connections: { websocket: 2, sse: 0 },
      uniqueUsers: 1,
      usersByRole: { user: 1 },
      subscriptions: { priceUpdated: 2 },
    });
  });
});

describe('logs', () => {
  it('carry the connection and operation ids on every line about a connection, and never a token or a payload at info', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const logger = pino({ level: 'info', base: { instance: 'logs' }, redact: { paths: ['*.authorization', 'connectionParams'], remove: true } }, sink);
    const gateway = await startGateway({ WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: '1' }, { logger });
    const token = await tokenFor('logan');
    const raw = await openRawSocket(gateway.wsUrl);
    await raw.init(token);
    raw.send({ id: 'first', type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId: 'log-hotel' } } });
    await gateway.waitForSubscribers(topics.hotelPrices('log-hotel'));
    raw.send({ id: 'second', type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId: 'other' } } });
    await raw.waitForMessage((message) => message['id'] === 'second' && message['type'] === 'error');
    await gateway.publish(PUBLISH_PRICE, { input: { ...priceInput('log-hotel').input, roomType: 'SECRET-PAYLOAD-SUITE' } });
    await raw.waitForMessage((message) => message['type'] === 'next');
    const forged = await openRawSocket(gateway.wsUrl);
    forged.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}tampered` } });
    await forged.waitForClose();
    raw.socket.close(1000);
    await waitUntil(() => lines.filter((line) => line['msg'] === 'websocket closed').length === 2, 'both closes to be logged');

    const aboutConnections = lines.filter((line) => String(line['msg']).startsWith('websocket') || 'operationId' in line || String(line['msg']).includes('limit'));
    expect(aboutConnections.map((line) => line['msg'])).toEqual(
      expect.arrayContaining(['websocket connected', 'subscription limit per connection reached', 'websocket authentication refused', 'websocket closed']),
    );
    for (const line of aboutConnections) expect(line['connectionId']).toEqual(expect.stringMatching(/^[0-9a-f-]{36}$/));
    const limitLine = lines.find((line) => line['msg'] === 'subscription limit per connection reached');
    expect(limitLine).toMatchObject({ operationId: 'second', instance: 'logs' });
    // Two connections, two ids: every line of the forged one carries its own.
    const forgedId = lines.find((line) => line['msg'] === 'websocket authentication refused')?.['connectionId'];
    expect(new Set(aboutConnections.filter((line) => line['connectionId'] !== forgedId).map((line) => line['connectionId'])).size).toBe(1);
    expect(aboutConnections.filter((line) => line['connectionId'] === forgedId).map((line) => line['msg'])).toEqual(['websocket authentication refused', 'websocket closed']);

    const everything = JSON.stringify(lines);
    expect(everything).not.toContain(token.split('.')[1]);
    expect(everything).not.toContain(token.split('.')[2]);
    expect(everything).not.toContain('SECRET-PAYLOAD-SUITE');
  });
});
