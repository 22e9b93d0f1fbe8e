import { createClient as createSseClient } from 'graphql-sse';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createRedisPublisher, InvalidEventError } from '../src/sdk/redis-publisher.js';
import { topics } from '../src/events/topics.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { bookingInput, NEW_MESSAGE, ADD_MEMBERS, NOTIFICATION_CREATED, PRICE_UPDATED, priceInput } from './support/operations.js';
import { counterValue } from './support/metrics.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

const PUBLISH_PRICES = 'mutation Prices($inputs: [PublishPriceInput!]!) { publishPrices(inputs: $inputs) { eventId type } }';
const PUBLISH_MESSAGES = 'mutation Messages($inputs: [PublishMessageInput!]!) { publishMessages(inputs: $inputs) { eventId } }';
const PUBLISH_NOTIFICATIONS = 'mutation Notifications($inputs: [PublishNotificationInput!]!) { publishNotifications(inputs: $inputs) { eventId } }';
const PUBLISH_BOOKINGS = 'mutation Bookings($inputs: [PublishBookingUpdateInput!]!) { publishBookingUpdates(inputs: $inputs) { eventId } }';

describe.each(BACKENDS)('bulk publishing (%s)', (backend) => {
  it('publishes the valid items in order and reports the invalid one by its index with a coded error', async () => {
    const gateway = await startGateway(await backendEnv(backend));
    const { client } = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const prices = record(client, PRICE_UPDATED, { hotelId: 'h1' });
    await gateway.waitForSubscribers(topics.hotelPrices('h1'));
    const service = await tokenFor('pricing', ['service']);

    const inputs = [priceInput('h1', 100).input, priceInput('h1', 200).input, { ...priceInput('h1', 300).input, price: { amountMinor: 300, currency: 'euro' } }, priceInput('h1', 400).input];
    const { status, body } = await gateway.http(PUBLISH_PRICES, { inputs }, service);
    expect(status).toBe(200);
    const receipts = body.data?.['publishPrices'] as Array<{ eventId: string; type: string } | null>;
    expect(receipts.map((receipt) => receipt?.type ?? null)).toEqual(['priceUpdated', 'priceUpdated', null, 'priceUpdated']);
    expect(body.errors).toHaveLength(1);
    expect(body.errors?.[0]).toMatchObject({ path: ['publishPrices', 2], extensions: { code: 'BAD_USER_INPUT', index: 2 } });
    expect(body.errors?.[0]?.message).toContain('index 2');

    const results = await prices.waitForResults(3);
    expect(results.map((result) => (result.data?.['priceUpdated'] as { price: { amountMinor: number } }).price.amountMinor)).toEqual([100, 200, 400]);
    expect(results.map((result) => (result.data?.['priceUpdated'] as { id: string }).id)).toEqual([receipts[0]?.eventId, receipts[1]?.eventId, receipts[3]?.eventId]);
    expect(await counterValue(gateway.app, 'eventsPublished', { type: 'priceUpdated' })).toBe(3);
  });

  it('has a bulk variant for messages, notifications and booking updates (which record the parties)', async () => {
    const gateway = await startGateway(await backendEnv(backend));
    const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const service = await tokenFor('svc', ['service']);
    await gateway.publish(ADD_MEMBERS, { conversationId: 'c1', userIds: ['alice', 'bob'] });
    const messages = record(alice.client, NEW_MESSAGE, { conversationId: 'c1' });
    const notifications = record(alice.client, NOTIFICATION_CREATED, {});
    await gateway.waitForSubscribers(topics.conversationMessages('c1'));
    await gateway.waitForSubscribers(topics.userNotifications('alice'));

    const sent = await gateway.http(
      PUBLISH_MESSAGES,
      { inputs: ['one', 'two'].map((text, index) => ({ messageId: `m${index}`, conversationId: 'c1', senderId: 'bob', text })) },
      service,
    );
    expect(sent.body.errors).toBeUndefined();
    const notified = await gateway.http(
      PUBLISH_NOTIFICATIONS,
      { inputs: [{ notificationId: 'n1', userId: 'alice', kind: 'SYSTEM', title: 'Hi' }, { notificationId: 'n2', userId: 'alice', kind: 'SYSTEM', title: '' }] },
      service,
    );
    expect(notified.body.errors?.[0]).toMatchObject({ path: ['publishNotifications', 1], extensions: { code: 'BAD_USER_INPUT', index: 1 } });
    expect((await messages.waitForResults(2)).map((result) => (result.data?.['newMessage'] as { text: string }).text)).toEqual(['one', 'two']);
    expect((await notifications.waitForResults(1))[0]?.data?.['notificationCreated']).toMatchObject({ notificationId: 'n1' });

    const booked = await gateway.http(PUBLISH_BOOKINGS, { inputs: [bookingInput('b1', 'alice', 'hank').input] }, service);
    expect(booked.body.errors).toBeUndefined();
    // The parties were recorded, as publishBookingUpdate records them.
    expect(await gateway.app.services.directory.bookings.partiesOf('b1')).toMatchObject({ guestId: 'alice', hostId: 'hank' });
  });

  it('refuses more than PUBLISH_MAX_BATCH items as a whole, and callers without the service role', async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), PUBLISH_MAX_BATCH: '2' });
    const inputs = [1, 2, 3].map((amount) => priceInput('h1', amount).input);
    const tooMany = await gateway.http(PUBLISH_PRICES, { inputs }, await tokenFor('svc', ['service']));
    expect(tooMany.body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
    expect(tooMany.body.errors?.[0]?.message).toContain('At most 2');
    const asUser = await gateway.http(PUBLISH_PRICES, { inputs: inputs.slice(0, 1) }, await tokenFor('alice'));
    expect(asUser.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect(await counterValue(gateway.app, 'eventsPublished')).toBe(0);
  });
});

describe('bulk publishing through the Redis publisher helper', () => {
  it('publishes the valid items in one pipeline, in order, and returns the invalid one as an InvalidEventError', async () => {
    const env = await backendEnv('redis');
    const gateway = await startGateway(env);
    const { client } = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const prices = record(client, PRICE_UPDATED, { hotelId: 'h9' });
    await gateway.waitForSubscribers(topics.hotelPrices('h9'));
    const redis = new Redis(env['REDIS_URL'] as string);
    onTestFinished(() => void redis.quit());
    const tidings = createRedisPublisher({ redis, prefix: env['REDIS_PREFIX'] as string });
    const data = (amountMinor: number, currency = 'EUR') => ({ hotelId: 'h9', roomType: 'DOUBLE', price: { amountMinor, currency } });
    const results = await tidings.publishMany('priceUpdated', [{ data: data(1) }, { data: data(2, 'eur') }, { data: data(3) }]);
    expect(results.map((result) => (result instanceof InvalidEventError ? 'invalid' : result.type))).toEqual(['priceUpdated', 'invalid', 'priceUpdated']);
    const received = await prices.waitForResults(2);
    expect(received.map((result) => (result.data?.['priceUpdated'] as { price: { amountMinor: number } }).price.amountMinor)).toEqual([1, 3]);
  });
});

describe('a burst larger than a stream can take in one dispatch (memory)', () => {
  it('does not fail the group an SSE subscriber shares with a WebSocket one', async () => {
    const gateway = await startGateway({ PUBLISH_MAX_BATCH: '2000', HTTP_MAX_BODY_BYTES: '2000000' });
    const token = await tokenFor('alice');
    const { client } = connectWs(gateway.wsUrl, token);
    const overSocket = record(client, PRICE_UPDATED, { hotelId: 'h1' });
    const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    onTestFinished(() => sse.dispose());
    const overSse: unknown[] = [];
    let sseEnded = false;
    sse.subscribe({ query: PRICE_UPDATED, variables: { hotelId: 'h1' } }, { next: (value) => void overSse.push(value), error: () => (sseEnded = true), complete: () => (sseEnded = true) });
    await gateway.waitForSubscribers(topics.hotelPrices('h1'), 2);
    expect(gateway.app.webSockets.sharedGroupCount()).toBe(1);
    // The memory bus hands all 1,500 events to the group in one synchronous loop: more than a
    // stream's 1,024 pending pushes.
    const inputs = Array.from({ length: 1_500 }, (_, index) => priceInput('h1', 100 + index).input);
    const { body } = await gateway.http(PUBLISH_PRICES, { inputs }, await tokenFor('pricing', ['service']));
    expect(body.errors).toBeUndefined();
    await waitUntil(() => overSse.length >= 1_000, 'the SSE results');
    // The WebSocket subscriber, later in the group's list, got the last event, and neither ended.
    await waitUntil(() => (overSocket.results.at(-1)?.data?.['priceUpdated'] as { price?: { amountMinor: number } } | undefined)?.price?.amountMinor === 1_599, 'the last price over WebSocket');
    expect(overSocket.isComplete()).toBe(false);
    expect(gateway.app.webSockets.sharedGroupCount()).toBe(1);
    // The SSE subscriber may be ended for itself (more than MAX_PENDING_RESULTS waiting): only ever
    // with SLOW_CONSUMER, never by a failure of the group.
    if (sseEnded) expect(JSON.stringify(overSse.at(-1))).toContain('SLOW_CONSUMER');
  });
});
