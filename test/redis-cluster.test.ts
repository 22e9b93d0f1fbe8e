import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { topics } from '../src/events/topics.js';
import { sharedRedis } from './support/backends.js';
import { pino } from 'pino';
import { createRedisEventBus } from '../src/bus/redis-event-bus.js';
import type { TidingsEvent } from '../src/events/contracts.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { createRedisConnections } from '../src/redis/connections.js';
import { createRedisPublisher, InvalidEventError } from '../src/sdk/redis-publisher.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import {
  ADD_MEMBERS,
  BOOKING_UPDATED,
  bookingInput,
  CHAT_RESPONSE,
  NEW_MESSAGE,
  NOTIFICATION_CREATED,
  PRICE_UPDATED,
  priceInput,
  PUBLISH_BOOKING,
  PUBLISH_MESSAGE,
  PUBLISH_NOTIFICATION,
  PUBLISH_PRICE,
  REMOVE_MEMBERS,
  SEND_CHAT,
  SET_TYPING,
  START_CHAT,
  USER_TYPING,
} from './support/operations.js';
import { randomPrefix } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/** Two gateway instances sharing one private redis-server and one random prefix. */
async function twoInstances(env: Record<string, string> = {}) {
  const redis = await sharedRedis();
  const shared = { REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), ...env };
  const a = await startGateway({ ...shared, INSTANCE_ID: 'a' });
  const b = await startGateway({ ...shared, INSTANCE_ID: 'b' });
  const inspector = redis.client();
  const numsub = async (gateway: TestGateway, topic: string) => {
    const [, count] = (await inspector.pubsub('NUMSUB', `${gateway.app.config.redis.prefix}${topic}`)) as [string, number];
    return count;
  };
  return { redis, a, b, inspector, numsub, prefix: shared.REDIS_PREFIX };
}

const droppedCount = async (gateway: TestGateway, reason: string) => {
  const metric = await gateway.app.metrics.eventsDropped.get();
  return metric.values.find((value) => value.labels.reason === reason)?.value ?? 0;
};

describe('across instances: a subscriber on B receives what a mutation on A published', () => {
  it('for all six subscriptions', async () => {
    const { a, b } = await twoInstances();
    await a.publish(ADD_MEMBERS, { conversationId: 'conv-1', userIds: ['alice', 'bob'] });
    await a.publish(PUBLISH_BOOKING, bookingInput('booking-1', 'alice', 'hank', 'PENDING'));
    const aliceToken = await tokenFor('alice');
    const bobToken = await tokenFor('bob');
    // The chat session is created on A; B must know it (shared Redis directory).
    const started = await a.http(START_CHAT, {}, aliceToken);
    const sessionId = (started.body.data?.['startChatSession'] as { id: string }).id;

    const { client } = connectWs(b.wsUrl, aliceToken);
    const prices = record(client, PRICE_UPDATED, { hotelId: 'hotel-1' });
    const messages = record(client, NEW_MESSAGE, { conversationId: 'conv-1' });
    const typing = record(client, USER_TYPING, { conversationId: 'conv-1' });
    const bookings = record(client, BOOKING_UPDATED, { bookingId: 'booking-1' });
    const notifications = record(client, NOTIFICATION_CREATED, {});
    const chat = record(client, CHAT_RESPONSE, { sessionId });
    for (const topic of [
      topics.hotelPrices('hotel-1'),
      topics.conversationMessages('conv-1'),
      topics.conversationTyping('conv-1'),
      topics.userBookings('alice'),
      topics.userNotifications('alice'),
      topics.chatSession(sessionId),
    ]) {
      await b.waitForSubscribers(topic);
    }

    await a.publish(PUBLISH_PRICE, priceInput('hotel-1'));
    await a.publish(PUBLISH_MESSAGE, { input: { messageId: 'm-1', conversationId: 'conv-1', senderId: 'bob', text: 'hi from A' } });
    await a.http(SET_TYPING, { conversationId: 'conv-1', state: 'STARTED' }, bobToken);
    await a.publish(PUBLISH_BOOKING, bookingInput('booking-1', 'alice', 'hank', 'CONFIRMED'));
    await a.publish(PUBLISH_NOTIFICATION, { input: { notificationId: 'n-1', userId: 'alice', kind: 'BOOKING', title: 'Confirmed' } });
    await a.http(SEND_CHAT, { sessionId, text: 'hello' }, aliceToken);

    expect((await prices.waitForResults(1))[0]?.data?.['priceUpdated']).toMatchObject({ hotelId: 'hotel-1' });
    expect((await messages.waitForResults(1))[0]?.data?.['newMessage']).toMatchObject({ text: 'hi from A' });
    expect((await typing.waitForResults(1))[0]?.data?.['userTyping']).toMatchObject({ userId: 'bob', state: 'STARTED' });
    expect((await bookings.waitForResults(1))[0]?.data?.['bookingUpdated']).toMatchObject({ status: 'CONFIRMED' });
    expect((await notifications.waitForResults(1))[0]?.data?.['notificationCreated']).toMatchObject({ notificationId: 'n-1' });
    await waitUntil(
      () => chat.results.some((r) => (r.data?.['chatResponse'] as { status?: string } | undefined)?.status === 'DONE'),
      'the chat reply on B',
    );
    const statuses = chat.results.map((r) => (r.data?.['chatResponse'] as { status: string }).status);
    expect(statuses[0]).toBe('TYPING');
  });
});

describe('the Redis channel contract', () => {
  it('delivers a raw PUBLISH of a valid envelope to subscribers on both instances', async () => {
    const { a, b, inspector, prefix } = await twoInstances();
    const onA = record(connectWs(a.wsUrl, await tokenFor('alice')).client, PRICE_UPDATED, { hotelId: 'hotel-raw' });
    const onB = record(connectWs(b.wsUrl, await tokenFor('bob')).client, PRICE_UPDATED, { hotelId: 'hotel-raw' });
    await a.waitForSubscribers(topics.hotelPrices('hotel-raw'));
    await b.waitForSubscribers(topics.hotelPrices('hotel-raw'));

    // What a pricing service in any language sends: no gateway code involved.
    const envelope = {
      id: 'evt-raw-1',
      type: 'priceUpdated',
      version: 1,
      occurredAt: '2026-11-22T09:00:00Z',
      data: { hotelId: 'hotel-raw', roomType: 'SUITE', price: { amountMinor: 50_000, currency: 'USD' } },
    };
    expect(await inspector.publish(`${prefix}price:hotel-raw`, JSON.stringify(envelope))).toBe(2);
    for (const recording of [onA, onB]) {
      const [result] = await recording.waitForResults(1);
      expect(result?.data?.['priceUpdated']).toMatchObject({ id: 'evt-raw-1', roomType: 'SUITE', price: { amount: '500.00', currency: 'USD' } });
    }
  });

  it('drops and counts each kind of invalid payload, while valid events around them arrive in order', async () => {
    const { a, b, inspector, prefix } = await twoInstances();
    const { client } = connectWs(b.wsUrl, await tokenFor('alice'));
    const prices = record(client, PRICE_UPDATED, { hotelId: 'hotel-1' });
    await b.waitForSubscribers(topics.hotelPrices('hotel-1'));
    const channel = `${prefix}price:hotel-1`;
    const valid = (n: number) =>
      JSON.stringify({
        id: `evt-${n}`,
        type: 'priceUpdated',
        version: 1,
        occurredAt: '2026-11-22T09:00:00Z',
        data: { hotelId: 'hotel-1', roomType: 'DOUBLE', price: { amountMinor: n, currency: 'EUR' } },
      });
    const base = JSON.parse(valid(0)) as Record<string, unknown>;
    const invalid: Array<[string, string]> = [
      ['invalid_json', '{"id": "evt-x", '],
      ['invalid_json', 'not json at all'],
      ['shape', JSON.stringify({ ...base, id: 'evt-bad-shape', data: { hotelId: 'hotel-1', price: 'free' } })],
      ['shape', JSON.stringify([1, 2, 3])],
      ['shape', JSON.stringify({ ...base, occurredAt: 'soon' })],
      ['unknown_type', JSON.stringify({ ...base, type: 'hotelSold' })],
      ['version', JSON.stringify({ ...base, version: 7 })],
      ['topic_mismatch', JSON.stringify({ ...base, data: { ...(base['data'] as object), hotelId: 'hotel-2' } })],
      [
        'topic_mismatch',
        JSON.stringify({ ...base, type: 'notificationCreated', data: { notificationId: 'n', userId: 'alice', kind: 'SYSTEM', title: 'sneaky' } }),
      ],
      ['too_large', JSON.stringify({ ...base, padding: 'x'.repeat(70_000) })],
    ];
    await inspector.publish(channel, valid(1));
    for (const [, payload] of invalid) await inspector.publish(channel, payload);
    await inspector.publish(channel, valid(2));
    await inspector.publish(channel, Buffer.from([0xff, 0xfe, 0x00, 0x7b]));
    await inspector.publish(channel, valid(3));

    await prices.waitForResults(3);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(prices.results.map((r) => (r.data?.['priceUpdated'] as { id: string }).id)).toEqual(['evt-1', 'evt-2', 'evt-3']);
    expect(prices.results.every((r) => r.errors === undefined)).toBe(true);
    const expected = new Map<string, number>();
    for (const [reason] of invalid) expected.set(reason, (expected.get(reason) ?? 0) + 1);
    expected.set('invalid_json', (expected.get('invalid_json') ?? 0) + 1); // the binary payload
    for (const [reason, count] of expected) expect(await droppedCount(b, reason), reason).toBe(count);
    // A has no subscriber on that channel, so it never even received them.
    for (const reason of expected.keys()) expect(await droppedCount(a, reason)).toBe(0);
  });
});

describe('a topic channel is unsubscribed when its last local subscriber leaves', () => {
  const paths: Array<[string, (ctx: { gateway: TestGateway; token: string; hotelId: string }) => Promise<void>]> = [
    [
      'graphql-ws complete',
      async ({ gateway, token, hotelId }) => {
        const recording = record(connectWs(gateway.wsUrl, token).client, PRICE_UPDATED, { hotelId });
        await gateway.waitForSubscribers(topics.hotelPrices(hotelId));
        recording.unsubscribe();
      },
    ],
    [
      'socket close',
      async ({ gateway, token, hotelId }) => {
        const { client } = connectWs(gateway.wsUrl, token);
        record(client, PRICE_UPDATED, { hotelId });
        await gateway.waitForSubscribers(topics.hotelPrices(hotelId));
        await client.dispose();
      },
    ],
    [
      'dropped TCP connection',
      async ({ gateway, token, hotelId }) => {
        const socket = await rawSubscribe(gateway, token, hotelId);
        socket.terminate();
      },
    ],
    [
      'missed keep-alive',
      async ({ gateway, token, hotelId }) => {
        const socket = await rawSubscribe(gateway, token, hotelId);
        // Stop answering pings without closing: ws answers pings automatically, so pause the stream.
        (socket as unknown as { _socket: { pause(): void } })._socket.pause();
      },
    ],
    [
      'SSE abort',
      async ({ gateway, token, hotelId }) => {
        const controller = new AbortController();
        const response = await fetch(gateway.httpUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
          body: JSON.stringify({ query: PRICE_UPDATED, variables: { hotelId } }),
          signal: controller.signal,
        });
        expect(response.status).toBe(200);
        await gateway.waitForSubscribers(topics.hotelPrices(hotelId));
        controller.abort();
      },
    ],
  ];

  it.each(paths)('after %s', async (_path, leave) => {
    const { a, numsub } = await twoInstances({ WS_KEEP_ALIVE_MS: '300' });
    const hotelId = `hotel-${Math.random().toString(36).slice(2, 8)}`;
    await leave({ gateway: a, token: await tokenFor('alice'), hotelId });
    await waitUntil(async () => (await numsub(a, topics.hotelPrices(hotelId))) === 0, 'UNSUBSCRIBE');
    expect(a.app.services.bus.subscriberCount(topics.hotelPrices(hotelId))).toBe(0);
  });

  it('keeps the channel while another local subscriber remains', async () => {
    const { a, numsub } = await twoInstances();
    const token = await tokenFor('alice');
    const first = record(connectWs(a.wsUrl, token).client, PRICE_UPDATED, { hotelId: 'hotel-k' });
    const second = record(connectWs(a.wsUrl, token).client, PRICE_UPDATED, { hotelId: 'hotel-k' });
    await a.waitForSubscribers(topics.hotelPrices('hotel-k'), 2);
    expect(await numsub(a, topics.hotelPrices('hotel-k'))).toBe(1); // NUMSUB counts instances, not clients
    first.unsubscribe();
    await waitUntil(() => a.app.services.bus.subscriberCount(topics.hotelPrices('hotel-k')) === 1, 'one subscriber left');
    expect(await numsub(a, topics.hotelPrices('hotel-k'))).toBe(1);
    second.unsubscribe();
    await waitUntil(async () => (await numsub(a, topics.hotelPrices('hotel-k'))) === 0, 'UNSUBSCRIBE');
  });
});

async function rawSubscribe(gateway: TestGateway, token: string, hotelId: string): Promise<WebSocket> {
  const socket = new WebSocket(gateway.wsUrl, 'graphql-transport-ws');
  await once(socket, 'open');
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  await once(socket, 'message');
  socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId } } }));
  await gateway.waitForSubscribers(topics.hotelPrices(hotelId));
  return socket;
}

describe('conversation membership through Redis', () => {
  it('ends a removed member\'s subscriptions on both instances', async () => {
    const { a, b } = await twoInstances();
    await a.publish(ADD_MEMBERS, { conversationId: 'conv-9', userIds: ['alice', 'bob'] });
    const token = await tokenFor('alice');
    const onA = record(connectWs(a.wsUrl, token).client, NEW_MESSAGE, { conversationId: 'conv-9' });
    const onB = record(connectWs(b.wsUrl, token).client, USER_TYPING, { conversationId: 'conv-9' });
    const bobOnB = record(connectWs(b.wsUrl, await tokenFor('bob')).client, NEW_MESSAGE, { conversationId: 'conv-9' });
    await a.waitForSubscribers(topics.conversationMessages('conv-9'));
    await b.waitForSubscribers(topics.conversationTyping('conv-9'));
    await b.waitForSubscribers(topics.conversationMessages('conv-9'));

    await b.publish(REMOVE_MEMBERS, { conversationId: 'conv-9', userIds: ['alice'] });
    await onA.waitForEnd();
    await onB.waitForEnd();
    expect(onA.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect(onB.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect(bobOnB.isComplete()).toBe(false);

    // And she cannot come back on either instance.
    const again = record(connectWs(a.wsUrl, token).client, NEW_MESSAGE, { conversationId: 'conv-9' });
    await again.waitForEnd();
    expect(again.results[0]?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });

  it("re-checks members after its subscriber connection alone was dropped, so a removal it missed still ends the stream", async () => {
    const { b, inspector, prefix } = await twoInstances();
    await inspector.sadd(`${prefix}conversation:conv-d:members`, 'alice', 'bob');
    const alice = record(connectWs(b.wsUrl, await tokenFor('alice')).client, NEW_MESSAGE, { conversationId: 'conv-d' });
    const bob = record(connectWs(b.wsUrl, await tokenFor('bob')).client, NEW_MESSAGE, { conversationId: 'conv-d' });
    await b.waitForSubscribers(topics.conversationMessages('conv-d'), 2);
    // Redis drops pub/sub clients that fall behind; here every subscriber connection is killed
    // and alice removed in the same instant, so the announcement reaches nobody.
    const results = await inspector
      .multi()
      .client('KILL', 'TYPE', 'pubsub')
      .srem(`${prefix}conversation:conv-d:members`, 'alice')
      .publish(`${prefix}membership`, JSON.stringify({ conversationId: 'conv-d', removed: ['alice'] }))
      .exec();
    expect(results?.[2]?.[1]).toBe(0); // no receiver
    await alice.waitForEnd();
    expect(alice.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    // Bob, still a member, keeps his stream through the reconnect.
    await b.waitForSubscribers(topics.conversationMessages('conv-d'));
    await b.publish(PUBLISH_MESSAGE, { input: { messageId: 'm-d', conversationId: 'conv-d', senderId: 'hank', text: 'still here' } });
    await bob.waitForResults(1);
    expect(bob.isComplete()).toBe(false);
  });

  it('honours a membership change a message service made directly in Redis', async () => {
    const { a, b, inspector, prefix } = await twoInstances();
    await inspector.sadd(`${prefix}conversation:conv-7:members`, 'carol');
    const token = await tokenFor('carol');
    const onB = record(connectWs(b.wsUrl, token).client, NEW_MESSAGE, { conversationId: 'conv-7' });
    await b.waitForSubscribers(topics.conversationMessages('conv-7'));
    await inspector.srem(`${prefix}conversation:conv-7:members`, 'carol');
    await inspector.publish(`${prefix}membership`, JSON.stringify({ conversationId: 'conv-7', removed: ['carol'] }));
    await onB.waitForEnd();
    expect(onB.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');

    // A malformed notification is dropped and counted, and breaks nothing.
    await inspector.publish(`${prefix}membership`, '{"conversationId": 5}');
    await waitUntil(async () => {
      const metric = await a.app.metrics.eventsDropped.get();
      return metric.values.some((value) => value.labels.source === 'membership' && value.value === 1);
    }, 'the membership drop to be counted');
  });
});

describe('Redis faults', () => {
  it('goes unready, fails mutations fast, and resumes the same subscriptions when Redis returns', async () => {
    const { redis, a, b } = await twoInstances();
    await a.publish(ADD_MEMBERS, { conversationId: 'conv-f', userIds: ['alice'] });
    const { client, closes } = connectWs(b.wsUrl, await tokenFor('alice'));
    const prices = record(client, PRICE_UPDATED, { hotelId: 'hotel-f' });
    const messages = record(client, NEW_MESSAGE, { conversationId: 'conv-f' });
    await b.waitForSubscribers(topics.hotelPrices('hotel-f'));
    await b.waitForSubscribers(topics.conversationMessages('conv-f'));
    await a.publish(PUBLISH_PRICE, priceInput('hotel-f', 100));
    await prices.waitForResults(1);

    await redis.kill();
    await waitUntil(async () => (await fetch(a.httpUrl.replace('/graphql', '/ready'))).status === 503, 'A to report not ready');
    await waitUntil(async () => (await fetch(b.httpUrl.replace('/graphql', '/ready'))).status === 503, 'B to report not ready');
    expect((await fetch(a.httpUrl.replace('/graphql', '/health'))).status).toBe(200);
    // What the TidingsInstanceNotReady alert reads.
    expect(await (await fetch(`${a.opsUrl}/metrics`)).text()).toMatch(/^tidings_ready 0$/m);

    // Tokens cannot be checked against session revocations now (the mirror is out of sync and
    // Redis does not answer): refused with 503 and reason `unavailable`, at once.
    const startedAt = Date.now();
    const during = await a.http(PUBLISH_PRICE, priceInput('hotel-f', 200), await tokenFor('pricing', ['service']));
    const elapsedMs = Date.now() - startedAt;
    expect(during.status).toBe(503);
    expect(during.body.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'unavailable' });
    expect(elapsedMs).toBeLessThan(1_500);

    await redis.restart();
    await waitUntil(async () => (await fetch(a.httpUrl.replace('/graphql', '/ready'))).ok, 'A ready again', 10_000);
    await waitUntil(async () => (await fetch(b.httpUrl.replace('/graphql', '/ready'))).ok, 'B ready again', 10_000);
    await b.waitForSubscribers(topics.hotelPrices('hotel-f'));

    await a.publish(PUBLISH_PRICE, priceInput('hotel-f', 300));
    const results = await prices.waitForResults(2);
    expect((results[1]?.data?.['priceUpdated'] as { price: { amountMinor: number } }).price.amountMinor).toBe(300);
    expect(closes).toHaveLength(0);
    expect(prices.isComplete()).toBe(false);

    // This Redis keeps nothing on disk, so the restart lost the conversation's members set. Changes
    // made while an instance was cut off are never announced to it: after reconnecting it re-checks
    // every member with a live subscription, and alice's ends.
    await messages.waitForEnd();
    expect(messages.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  }, 40_000);
});

describe('Redis refusing commands while the revocation mirror is in sync', () => {
  it('fails a publish fast with PUBLISH_FAILED and a membership lookup with SERVICE_UNAVAILABLE', async () => {
    const redis = await sharedRedis();
    const admin = redis.client();
    const prefix = randomPrefix();
    const user = `gw-${prefix.replace(/[^a-z0-9]/gi, '')}`;
    await admin.call('ACL', 'SETUSER', user, 'on', '>secret', '~*', '&*', '+@all');
    const url = new URL(redis.url);
    url.username = user;
    url.password = 'secret';
    const gateway = await startGateway({ REDIS_URL: url.href, REDIS_PREFIX: prefix });
    await waitUntil(() => gateway.app.services.revocations.mirrorInSync?.() === true, 'the mirror to be loaded');
    // Tokens are still checked (from the mirror); the commands behind the operations are refused.
    await admin.call('ACL', 'SETUSER', user, '-publish', '-sismember');
    try {
      const startedAt = Date.now();
      const publish = await gateway.http(PUBLISH_PRICE, priceInput('hotel-acl', 200), await tokenFor('pricing', ['service']));
      expect(Date.now() - startedAt).toBeLessThan(1_500);
      expect(publish.body.errors?.[0]?.extensions?.['code']).toBe('PUBLISH_FAILED');
      const lookup = await gateway.http(`subscription { newMessage(conversationId: "c") { id } }`, {}, await tokenFor('alice'));
      expect(lookup.body.errors?.[0]?.extensions?.['code']).toBe('SERVICE_UNAVAILABLE');
    } finally {
      // Given back rather than deleted: the gateway still holds connections as this user.
      await admin.call('ACL', 'SETUSER', user, '+publish', '+sismember');
    }
  });
});

describe('a refused SUBSCRIBE', () => {
  it('is tried again while the topic has subscribers, so they receive once Redis allows it', async () => {
    const redis = await sharedRedis();
    const admin = redis.client();
    const prefix = randomPrefix();
    const user = `bus-${prefix.replace(/[^a-z0-9]/gi, '')}`;
    // A Redis user who may not subscribe to this topic's channel yet.
    await admin.call('ACL', 'SETUSER', user, 'on', '>secret', '~*', '+@all', 'resetchannels', `&${prefix}other`);
    const url = new URL(redis.url);
    url.username = user;
    url.password = 'secret';
    const logger = pino({ level: 'silent' });
    const connections = createRedisConnections(url.href, logger);
    const bus = createRedisEventBus({ connections, prefix, maxEventBytes: 65_536, logger, metrics: createMetrics() });
    // graphql-redis-subscriptions rejects an internal promise nobody awaits when SUBSCRIBE fails
    // (the gateway's main.ts logs such rejections); only that NOPERM rejection is expected here.
    const vitestListeners = process.listeners('unhandledRejection');
    process.removeAllListeners('unhandledRejection');
    const unexpected: unknown[] = [];
    process.on('unhandledRejection', (reason) => {
      if (!String(reason).includes('NOPERM')) unexpected.push(reason);
    });
    try {
      const stream = bus.subscribe(topics.hotelPrices('hotel-acl'));
      const first = stream.next();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await admin.call('ACL', 'SETUSER', user, `&${prefix}*`);
      await waitUntil(async () => {
        const [, count] = (await admin.pubsub('NUMSUB', `${prefix}price:hotel-acl`)) as [string, number];
        return count === 1;
      }, 'the retried SUBSCRIBE to reach Redis', 5_000);
      await createRedisPublisher({ redis: admin, prefix }).publish('priceUpdated', {
        hotelId: 'hotel-acl',
        roomType: 'DOUBLE',
        price: { amountMinor: 1, currency: 'EUR' },
      });
      expect((await withTimeout(first, 'the event after the retry')).value?.data).toMatchObject({ price: { amountMinor: 1 } });
      await stream.return?.();
      expect(unexpected).toEqual([]);
    } finally {
      process.removeAllListeners('unhandledRejection');
      for (const listener of vitestListeners) process.on('unhandledRejection', listener);
      await bus.close();
      await connections.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });
});

describe('the TypeScript publisher for services (src/sdk)', () => {
  it('publishes validated events and membership changes that the gateway acts on', async () => {
    const { b, inspector, prefix } = await twoInstances();
    const publisher = createRedisPublisher({ redis: inspector, prefix });
    await inspector.sadd(`${prefix}conversation:conv-s:members`, 'dave');
    const token = await tokenFor('dave');
    const prices = record(connectWs(b.wsUrl, token).client, PRICE_UPDATED, { hotelId: 'hotel-s' });
    const messages = record(connectWs(b.wsUrl, token).client, NEW_MESSAGE, { conversationId: 'conv-s' });
    await b.waitForSubscribers(topics.hotelPrices('hotel-s'));
    await b.waitForSubscribers(topics.conversationMessages('conv-s'));

    const published = await publisher.publish('priceUpdated', { hotelId: 'hotel-s', roomType: 'TWIN', price: { amountMinor: 7_500, currency: 'GBP' } });
    const [result] = await prices.waitForResults(1);
    expect(result?.data?.['priceUpdated']).toMatchObject({ id: published.id, price: { amount: '75.00', currency: 'GBP' } });

    await expect(publisher.publish('priceUpdated', { hotelId: 'bad:id', roomType: 'TWIN', price: { amountMinor: -1, currency: 'GBP' } })).rejects.toBeInstanceOf(
      InvalidEventError,
    );
    await expect(publisher.announceMembershipChange({ conversationId: 'conv-s' })).rejects.toBeInstanceOf(InvalidEventError);

    await inspector.srem(`${prefix}conversation:conv-s:members`, 'dave');
    await publisher.announceMembershipChange({ conversationId: 'conv-s', removed: ['dave'] });
    await messages.waitForEnd();
    expect(messages.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });
});

describe('start-up', () => {
  it('does not lose a SUBSCRIBE sent while the subscriber connection is still handshaking (ioredis issue 2037)', async () => {
    const redis = await sharedRedis();
    const inspector = redis.client();
    const logger = pino({ level: 'silent' });
    for (let attempt = 0; attempt < 3; attempt++) {
      const prefix = randomPrefix();
      const connections = createRedisConnections(redis.url, logger);
      const bus = createRedisEventBus({ connections, prefix, maxEventBytes: 65_536, logger, metrics: createMetrics() });
      // 'connect' fires before the ready check: with the ready check on, a SUBSCRIBE sent here
      // resolves but is silently dropped by ioredis.
      const stream = await withTimeout(
        new Promise<AsyncIterableIterator<TidingsEvent>>((resolve) =>
          connections.subscriber.once('connect', () => resolve(bus.subscribe(topics.hotelPrices('hotel-early')))),
        ),
        'the subscriber connection to connect',
      );
      const first = stream.next();
      await waitUntil(async () => {
        const [, count] = (await inspector.pubsub('NUMSUB', `${prefix}price:hotel-early`)) as [string, number];
        return count === 1;
      }, 'the early SUBSCRIBE to reach Redis', 3_000);
      await createRedisPublisher({ redis: inspector, prefix }).publish('priceUpdated', {
        hotelId: 'hotel-early',
        roomType: 'DOUBLE',
        price: { amountMinor: attempt, currency: 'EUR' },
      });
      expect((await withTimeout(first, 'the published event')).value?.data).toMatchObject({ price: { amountMinor: attempt } });
      await stream.return?.();
      await bus.close();
      await connections.close();
    }
  }, 30_000);
});

function withTimeout<T>(promise: Promise<T>, what: string, timeoutMs = 5_000): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), timeoutMs)),
  ]);
}
