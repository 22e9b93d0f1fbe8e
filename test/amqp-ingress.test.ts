import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import { topics } from '../src/events/topics.js';
import { DEAD_LETTER_HEADERS } from '../src/ingress/amqp-ingress.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { counterValue } from './support/metrics.js';
import { ADD_MEMBERS, BOOKING_UPDATED, NEW_MESSAGE, NOTIFICATION_CREATED, PRICE_UPDATED, REGISTER_BOOKING } from './support/operations.js';
import { connectServiceEventBus, createTestRabbit, drainQueue, readyMessages, testTopology, type TestRabbit, type TestTopology } from './support/rabbitmq.js';
import { randomPrefix, startRedis, type TestRedis } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * The RabbitMQ ingress against a RabbitMQ node of this file's own (never the machine's), each
 * test on exchange and queue names of its own (removed afterwards), with a private Redis so a
 * test can take it away. The messages are sent
 * as the services Tidings replaces send them (../shared/seeds/001: their EventBus class).
 */

let redis: TestRedis;
let rabbit: TestRabbit;
const topologies: TestTopology[] = [];

beforeAll(async () => {
  [redis, rabbit] = await Promise.all([startRedis(), createTestRabbit()]);
  await rabbit.start();
}, 120_000);

afterAll(async () => {
  await Promise.all(topologies.map((topology) => topology.remove(rabbit.url).catch(() => undefined)));
  await Promise.all([redis?.stop(), rabbit?.remove()]);
}, 90_000);

/** Two instances sharing one Redis and consuming one queue, both consuming before it returns. */
async function twoInstances(): Promise<{ a: TestGateway; b: TestGateway; topology: TestTopology }> {
  const topology = testTopology();
  topologies.push(topology);
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), ...topology.env(rabbit.url) };
  const a = await startGateway({ ...env, INSTANCE_ID: 'gateway-a' });
  const b = await startGateway({ ...env, INSTANCE_ID: 'gateway-b' });
  await waitUntil(() => [a, b].every((gateway) => (gateway.app.stats()['amqp'] as { state: string }).state === 'consuming'), 'both instances to consume', 15_000);
  return { a, b, topology };
}

const sum = async (gateways: TestGateway[], read: (gateway: TestGateway) => Promise<number>) =>
  (await Promise.all(gateways.map(read))).reduce((total, value) => total + value, 0);

/** As the message service sends it: `message.timestamp` is a serialized Date. */
const messageSent = (conversationId: string, id: string, content: string) => ({
  conversationId,
  senderId: 'gina',
  recipientId: 'hugo',
  message: { id, content, timestamp: new Date('2026-12-07T10:00:00.000Z') },
  timestamp: new Date().toISOString(),
});

const notificationCreated = (userId: string, id: string, type = 'booking') => ({
  notificationId: id,
  userId,
  type,
  title: 'Booking confirmed',
  message: 'Your stay in Lisbon is confirmed',
  data: { bookingId: 'b-1' },
  timestamp: new Date().toISOString(),
});

describe('RabbitMQ ingress', () => {
  it('delivers each of the three service messages to subscribers on both instances, consumed by one of them', async () => {
    const { a, b, topology } = await twoInstances();
    await a.publish(ADD_MEMBERS, { conversationId: 'c-1', userIds: ['gina', 'hugo'] });
    await a.publish(REGISTER_BOOKING, { bookingId: 'b-1', guestId: 'gina', hostId: 'hugo' });
    const gina = connectWs(a.wsUrl, await tokenFor('gina')).client;
    const hugo = connectWs(b.wsUrl, await tokenFor('hugo', ['user', 'host'])).client;
    const ginaMessages = record(gina, NEW_MESSAGE, { conversationId: 'c-1' });
    const hugoMessages = record(hugo, NEW_MESSAGE, { conversationId: 'c-1' });
    const ginaBookings = record(gina, BOOKING_UPDATED);
    const hugoBookings = record(hugo, BOOKING_UPDATED);
    const ginaNotifications = record(gina, NOTIFICATION_CREATED);
    await a.waitForSubscribers(topics.conversationMessages('c-1'));
    await b.waitForSubscribers(topics.conversationMessages('c-1'));
    await a.waitForSubscribers(topics.userBookings('gina'));
    await b.waitForSubscribers(topics.userBookings('hugo'));
    await a.waitForSubscribers(topics.userNotifications('gina'));

    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    try {
      await service.publish('message.sent', messageSent('c-1', 'm-1', 'See you at 3'));
      await service.publish('booking.confirmed', {
        bookingId: 'b-1',
        userId: 'gina',
        status: 'confirmed',
        booking: { id: 'b-1', listingId: 'listing-7', checkIn: new Date('2027-01-10T00:00:00.000Z'), checkOut: new Date('2027-01-14T00:00:00.000Z'), totalPrice: 480.5 },
        timestamp: '2026-12-07T10:01:00.000Z',
      });
      await service.publish('notification.created', notificationCreated('gina', 'n-1'));
    } finally {
      await service.close();
    }

    for (const recording of [ginaMessages, hugoMessages]) {
      const [result] = await recording.waitForResults(1);
      expect(result?.data?.['newMessage']).toMatchObject({ messageId: 'm-1', conversationId: 'c-1', senderId: 'gina', text: 'See you at 3', occurredAt: '2026-12-07T10:00:00.000Z' });
    }
    for (const recording of [ginaBookings, hugoBookings]) {
      const [result] = await recording.waitForResults(1);
      expect(result?.data?.['bookingUpdated']).toMatchObject({
        bookingId: 'b-1',
        hotelId: 'listing-7',
        guestId: 'gina',
        hostId: 'hugo',
        status: 'CONFIRMED',
        previousStatus: null,
        checkIn: '2027-01-10',
        checkOut: '2027-01-14',
        totalPrice: { amount: '480.50', currency: 'EUR' },
        occurredAt: '2026-12-07T10:01:00.000Z',
      });
    }
    const [notification] = await ginaNotifications.waitForResults(1);
    expect(notification?.data?.['notificationCreated']).toMatchObject({ notificationId: 'n-1', userId: 'gina', kind: 'BOOKING', title: 'Booking confirmed', body: 'Your stay in Lisbon is confirmed', link: null });

    // Each message was taken by one instance and published once; both instances delivered.
    await waitUntil(async () => (await sum([a, b], (gateway) => counterValue(gateway.app, 'eventsPublished', { source: 'amqp' }))) === 3, 'three events published from RabbitMQ');
    expect(await sum([a, b], (gateway) => counterValue(gateway.app, 'amqpConsumed'))).toBe(3);
    expect(await readyMessages(rabbit.url, topology.queue)).toBe(0);
  });

  it('delivers a burst once although both instances consume, and a message sent twice once', async () => {
    const { a, b, topology } = await twoInstances();
    const gina = connectWs(b.wsUrl, await tokenFor('gina')).client;
    const notifications = record(gina, NOTIFICATION_CREATED);
    await b.waitForSubscribers(topics.userNotifications('gina'));
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    try {
      for (let index = 0; index < 200; index += 1) await service.publish('notification.created', notificationCreated('gina', `burst-${index}`));
      // The same message again: a service retrying after a lost confirm, or a redelivery.
      await service.publish('notification.created', notificationCreated('gina', 'burst-7'));
    } finally {
      await service.close();
    }
    await notifications.waitForResults(200);
    await waitUntil(async () => (await sum([a, b], (gateway) => counterValue(gateway.app, 'amqpConsumed'))) === 201, 'every message consumed');
    await waitUntil(async () => (await sum([a, b], (gateway) => counterValue(gateway.app, 'amqpDuplicates'))) === 1, 'the repeated message recognized');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const ids = notifications.results.map((result) => (result.data?.['notificationCreated'] as { notificationId: string }).notificationId);
    expect(ids).toHaveLength(200);
    expect(new Set(ids).size).toBe(200);
    expect(await sum([a, b], (gateway) => counterValue(gateway.app, 'eventsPublished', { source: 'amqp' }))).toBe(200);
  });

  it('moves poison messages to the dead-letter queue with their reason, and goes on with the next', async () => {
    const { a, b, topology } = await twoInstances();
    const gina = connectWs(a.wsUrl, await tokenFor('gina')).client;
    const notifications = record(gina, NOTIFICATION_CREATED);
    await a.waitForSubscribers(topics.userNotifications('gina'));
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    try {
      await service.publishRaw('notification.created', Buffer.from('{"notificationId": "n-1", '));
      await service.publishRaw('notification.created', Buffer.from([0x7b, 0xff, 0x7d]));
      await service.publish('message.sent', { conversationId: 'c-1', senderId: 'gina' });
      await service.publish('notification.created', { ...notificationCreated('gina', 'n-big'), message: 'x'.repeat(70_000) });
      await service.publish('booking.confirmed', {
        bookingId: 'b-unknown',
        userId: 'gina',
        status: 'confirmed',
        booking: { listingId: 'listing-7', checkIn: '2027-01-10', checkOut: '2027-01-14', totalPrice: 100 },
        timestamp: new Date().toISOString(),
      });
      await service.publish('notification.created', notificationCreated('gina', 'n-after'));
    } finally {
      await service.close();
    }
    // Straight into the queue, as a message under a routing key Tidings does not consume.
    const connection = await amqp.connect(rabbit.url);
    const channel = await connection.createConfirmChannel();
    channel.sendToQueue(topology.queue, Buffer.from('{}'), { persistent: true });
    await channel.waitForConfirms();
    await connection.close();

    const [delivered] = await notifications.waitForResults(1);
    expect(delivered?.data?.['notificationCreated']).toMatchObject({ notificationId: 'n-after' });
    await waitUntil(async () => (await sum([a, b], (gateway) => counterValue(gateway.app, 'amqpDeadLettered'))) === 6, 'six messages dead-lettered');
    const dead = await drainQueue(rabbit.url, topology.deadLetterQueue);
    const reasons = dead.map((message) => [message.properties.headers?.[DEAD_LETTER_HEADERS.reason], message.properties.headers?.[DEAD_LETTER_HEADERS.routingKey]]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        ['invalid_json', 'notification.created'],
        ['invalid_json', 'notification.created'],
        ['shape', 'message.sent'],
        ['too_large', 'notification.created'],
        ['unknown_booking', 'booking.confirmed'],
        ['unknown_routing_key', topology.queue],
      ]),
    );
    expect(dead).toHaveLength(6);
    // The bytes are kept as sent, and the issues say what was wrong.
    const shape = dead.find((message) => message.properties.headers?.[DEAD_LETTER_HEADERS.reason] === 'shape');
    expect(JSON.parse(shape!.content.toString())).toEqual({ conversationId: 'c-1', senderId: 'gina' });
    expect(String(shape!.properties.headers?.[DEAD_LETTER_HEADERS.issues])).toContain('message');
    expect(await sum([a, b], (gateway) => counterValue(gateway.app, 'amqpDeadLettered', { reason: 'invalid_json' }))).toBe(2);
    expect(await readyMessages(rabbit.url, topology.queue)).toBe(0);
    expect(notifications.results).toHaveLength(1);
  });

  it('does not acknowledge while Redis is down, and delivers once Redis is back', async () => {
    const { a, b, topology } = await twoInstances();
    const gina = connectWs(a.wsUrl, await tokenFor('gina')).client;
    const notifications = record(gina, NOTIFICATION_CREATED);
    await a.waitForSubscribers(topics.userNotifications('gina'));
    await redis.kill();
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    try {
      await service.publish('notification.created', notificationCreated('gina', 'n-outage'));
    } finally {
      await service.close();
    }
    // Taken, tried, handed back: more than once, since the outage lasts.
    await waitUntil(async () => (await sum([a, b], (gateway) => counterValue(gateway.app, 'amqpRequeued'))) >= 2, 'the message handed back', 10_000);
    expect(notifications.results).toHaveLength(0);
    await redis.restart();
    const [result] = await notifications.waitForResults(1).then(
      (results) => results,
      async () => {
        throw new Error(`not delivered after Redis returned; redelivered ${await sum([a, b], (gateway) => counterValue(gateway.app, 'amqpRedelivered'))}`);
      },
    );
    expect(result?.data?.['notificationCreated']).toMatchObject({ notificationId: 'n-outage' });
    expect(await sum([a, b], (gateway) => counterValue(gateway.app, 'amqpRedelivered'))).toBeGreaterThanOrEqual(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(notifications.results).toHaveLength(1);
  }, 30_000);

  it('declares its queue again and goes on consuming when the queue is deleted under it', async () => {
    const { a, b, topology } = await twoInstances();
    const gina = connectWs(a.wsUrl, await tokenFor('gina')).client;
    const notifications = record(gina, NOTIFICATION_CREATED);
    await a.waitForSubscribers(topics.userNotifications('gina'));
    // An operator deletes the queue: the broker cancels both consumers (a null delivery).
    const admin = await amqp.connect(rabbit.url);
    const channel = await admin.createChannel();
    await channel.deleteQueue(topology.queue);
    await admin.close();
    const state = (gateway: TestGateway) => (gateway.app.stats()['amqp'] as { state: string }).state;
    await waitUntil(() => state(a) !== 'consuming' || state(b) !== 'consuming', 'the consumers to notice', 5_000).catch(() => undefined);
    // Each declares the queue and its bindings again on a new channel, and consumes.
    await waitUntil(() => state(a) === 'consuming' && state(b) === 'consuming', 'both instances to consume again', 15_000);
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    try {
      await service.publish('notification.created', notificationCreated('gina', 'after-delete'));
    } finally {
      await service.close();
    }
    const [result] = await notifications.waitForResults(1);
    expect(result?.data?.['notificationCreated']).toMatchObject({ notificationId: 'after-delete' });
  }, 30_000);

  it('hands the messages it holds back to the queue when it shuts down', async () => {
    const topology = testTopology();
    topologies.push(topology);
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), SHUTDOWN_TIMEOUT_MS: '2000', ...topology.env(rabbit.url) });
    await waitUntil(() => (gateway.app.stats()['amqp'] as { state: string }).state === 'consuming', 'the ingress to consume', 15_000);
    // Redis away: the messages are taken and held (not publishable) when the shutdown comes.
    await redis.kill();
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    try {
      await service.publishAll('notification.created', [1, 2, 3, 4, 5].map((index) => notificationCreated('gina', `held-${index}`)));
    } finally {
      await service.close();
    }
    await waitUntil(async () => (await readyMessages(rabbit.url, topology.queue)) === 0 && (await counterValue(gateway.app, 'amqpConsumed')) >= 5, 'the messages taken', 10_000);
    await gateway.app.stop();
    expect((gateway.app.stats()['amqp'] as { state: string }).state).toBe('stopped');
    await waitUntil(async () => (await readyMessages(rabbit.url, topology.queue)) === 5, 'the five messages back in the queue', 10_000);
    await redis.restart();
  }, 30_000);

  it('consumes price.updated in Tidings\' own envelope, and says in /ready and /stats what it is doing', async () => {
    const { a, topology } = await twoInstances();
    const viewer = connectWs(a.wsUrl, await tokenFor('gina')).client;
    const prices = record(viewer, PRICE_UPDATED, { hotelId: 'h-1' });
    await a.waitForSubscribers(topics.hotelPrices('h-1'));
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    try {
      await service.publish('price.updated', {
        id: 'price-event-1',
        type: 'priceUpdated',
        version: 1,
        occurredAt: new Date().toISOString(),
        data: { hotelId: 'h-1', roomType: 'double', price: { amountMinor: 12_900, currency: 'EUR' } },
      });
    } finally {
      await service.close();
    }
    const [result] = await prices.waitForResults(1);
    expect(result?.data?.['priceUpdated']).toMatchObject({ id: 'price-event-1', hotelId: 'h-1', price: { amountMinor: 12_900, currency: 'EUR' } });
    const ready = (await (await fetch(a.httpUrl.replace('/graphql', '/ready'))).json()) as { ready: boolean; components: Record<string, string> };
    expect(ready).toEqual({ ready: true, components: { instance: 'running', pubsub: 'up', directory: 'up', amqp: 'consuming' } });
    const stats = (await (await fetch(`${a.opsUrl}/stats`)).json()) as { amqp: Record<string, unknown> };
    expect(stats.amqp).toEqual({ state: 'consuming', exchange: topology.exchange, queue: topology.queue, deadLetterQueue: topology.deadLetterQueue });
    const metrics = await (await fetch(`${a.opsUrl}/metrics`)).text();
    expect(metrics).toContain(`tidings_amqp_consumer_up{queue="${topology.queue}"} 1`);
  });
});
