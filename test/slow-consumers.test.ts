import { request as httpRequest, type IncomingMessage } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { ADD_MEMBERS, NEW_MESSAGE, PRICE_UPDATED } from './support/operations.js';
import { openRawSocket } from './support/raw-socket.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

const BOUND = 64 * 1024;
const ROOM_TYPES = ['A', 'B', 'C'].map((letter) => letter.repeat(64));
/** The events must outgrow the kernel's socket buffers quickly: 400 aliases make each about 30 kB. */
const BIG_PRICES = `subscription Big($hotelId: ID!) {
  priceUpdated(hotelId: $hotelId) {
    hotelId roomType price { amountMinor }
    ${Array.from({ length: 400 }, (_, index) => `r${index}: roomType`).join(' ')}
  }
}`;

/** A full GC before reading the heap, so garbage not yet collected does not count. */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
function heapAfterGc(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

async function metricValue(gateway: TestGateway, metric: 'limitTrips' | 'eventsDropped', labels: Record<string, string>): Promise<number> {
  const values = (await gateway.app.metrics[metric].get()).values;
  return values.filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key as never] === wanted)).reduce((sum, value) => sum + value.value, 0);
}

function heldBytesOf(gateway: TestGateway, userId: string): number {
  return gateway.app.webSockets.connections().find((connection) => connection.userId === userId)?.heldBytes ?? 0;
}

async function startSlowConsumerGateway(graceMs: number) {
  return startGateway({
    WS_MAX_BUFFERED_BYTES: String(BOUND),
    WS_SLOW_CONSUMER_GRACE_MS: String(graceMs),
    QUERY_MAX_ALIASES: '1000',
    QUERY_MAX_TOKENS: '100000',
    QUERY_MAX_COST: '1000000',
  });
}

describe('slow consumers', () => {
  it('keeps only the latest price per room for a client that stops reading; memory stays bounded; others lose nothing', async () => {
    const gateway = await startSlowConsumerGateway(600_000);
    const bystander = connectWs(gateway.wsUrl, await tokenFor('bystander'));
    const bystanderPrices = record(bystander.client, PRICE_UPDATED, { hotelId: 'slow-hotel' });

    const slow = await openRawSocket(gateway.wsUrl);
    await slow.init(await tokenFor('slow'));
    slow.send({ id: 'big', type: 'subscribe', payload: { query: BIG_PRICES, variables: { hotelId: 'slow-hotel' } } });
    await gateway.waitForSubscribers(topics.hotelPrices('slow-hotel'), 2);
    slow.socket.pause();

    const heapBefore = heapAfterGc();
    let published = 0;
    let maxHeld = 0;
    let conflatedAt: number | undefined;
    const latest = new Map<string, number>();
    // Publish until conflation has been going on for a while (the kernel's buffers fill first).
    while (published < 6_000 && (conflatedAt === undefined || published < Math.max(conflatedAt + 600, 2_000))) {
      for (let index = 0; index < 50; index++) {
        published++;
        const roomType = ROOM_TYPES[published % ROOM_TYPES.length] as string;
        latest.set(roomType, published);
        await gateway.app.services.publisher.publish('priceUpdated', { hotelId: 'slow-hotel', roomType, price: { amountMinor: published, currency: 'EUR' } });
      }
      await new Promise((resolve) => setImmediate(resolve));
      maxHeld = Math.max(maxHeld, heldBytesOf(gateway, 'slow'));
      if (conflatedAt === undefined && (await metricValue(gateway, 'eventsDropped', { reason: 'conflated' })) > 0) conflatedAt = published;
    }
    expect(conflatedAt).toBeDefined();
    const messageBytes = 30 * 1024;
    // The socket's buffer stays near the bound; beyond it, one waiting event per room type.
    expect(maxHeld).toBeLessThanOrEqual(BOUND + (ROOM_TYPES.length + 2) * messageBytes);
    // Without conflation the server would hold every event: hundreds of times the bound.
    const publishedBytes = published * messageBytes;
    expect(publishedBytes).toBeGreaterThan(100 * BOUND);
    expect(publishedBytes).toBeGreaterThan(50 * 1024 * 1024);
    expect(heapAfterGc() - heapBefore).toBeLessThan(16 * 1024 * 1024);

    await bystanderPrices.waitForResults(published);
    expect(bystanderPrices.results.map((result) => (result.data?.['priceUpdated'] as { price: { amountMinor: number } }).price.amountMinor)).toEqual(
      Array.from({ length: published }, (_, index) => index + 1),
    );

    // Reading again, the slow client catches up with the latest price of every room.
    slow.socket.resume();
    const lastSeen = new Map<string, number>();
    await waitUntil(() => {
      for (const message of slow.messages) {
        const price = ((message['payload'] as { data?: { priceUpdated?: { roomType: string; price: { amountMinor: number } } } } | undefined)?.data)?.priceUpdated;
        if (price) lastSeen.set(price.roomType, price.price.amountMinor);
      }
      return ROOM_TYPES.every((roomType) => lastSeen.get(roomType) === latest.get(roomType));
    }, 'the latest price of every room');
    const received = slow.messages.filter((message) => message['type'] === 'next').length;
    expect(received).toBeLessThan(published);
    expect(slow.socket.readyState).toBe(slow.socket.OPEN);
    expect(bystander.closes).toEqual([]);
  }, 60_000);

  it('never sends a conflated result after the client completed that operation, even when it reuses the id', async () => {
    const gateway = await startSlowConsumerGateway(600_000);
    const slow = await openRawSocket(gateway.wsUrl);
    await slow.init(await tokenFor('reuser'));
    slow.send({ id: 'x', type: 'subscribe', payload: { query: BIG_PRICES, variables: { hotelId: 'reuse-1' } } });
    await gateway.waitForSubscribers(topics.hotelPrices('reuse-1'));
    slow.socket.pause();
    let published = 0;
    let conflatedAt: number | undefined;
    while (published < 6_000 && (conflatedAt === undefined || published < conflatedAt + 100)) {
      for (let index = 0; index < 50; index++) {
        published++;
        await gateway.app.services.publisher.publish('priceUpdated', { hotelId: 'reuse-1', roomType: ROOM_TYPES[0] as string, price: { amountMinor: published, currency: 'EUR' } });
      }
      await new Promise((resolve) => setImmediate(resolve));
      if (conflatedAt === undefined && (await metricValue(gateway, 'eventsDropped', { reason: 'conflated' })) > 0) conflatedAt = published;
    }
    expect(conflatedAt).toBeDefined();
    // The latest price waits in the queue; the client completes and reuses the id for another hotel.
    slow.send({ id: 'x', type: 'complete' });
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.hotelPrices('reuse-1')) === 0, 'the completed subscription to end');
    slow.send({ id: 'x', type: 'subscribe', payload: { query: BIG_PRICES, variables: { hotelId: 'reuse-2' } } });
    await gateway.waitForSubscribers(topics.hotelPrices('reuse-2'));
    slow.socket.resume();
    await gateway.app.services.publisher.publish('priceUpdated', { hotelId: 'reuse-2', roomType: ROOM_TYPES[1] as string, price: { amountMinor: 1, currency: 'EUR' } });
    const pricesOf = () =>
      slow.messages
        .filter((message) => message['id'] === 'x' && message['type'] === 'next')
        .map((message) => (message['payload'] as { data: { priceUpdated: { hotelId: string; price: { amountMinor: number } } } }).data.priceUpdated);
    await waitUntil(() => pricesOf().some((price) => price.hotelId === 'reuse-2'), 'the new operation to receive');
    const prices = pricesOf();
    expect(prices.some((price) => price.hotelId === 'reuse-1' && price.price.amountMinor === published)).toBe(false);
    // Once the new operation's first result arrived, nothing of the old one follows.
    const firstNew = prices.findIndex((price) => price.hotelId === 'reuse-2');
    expect(prices.slice(firstNew).every((price) => price.hotelId === 'reuse-2')).toBe(true);
  }, 60_000);

  it('disconnects a client that stays behind on events that cannot be conflated (4292); others lose nothing', async () => {
    const gateway = await startSlowConsumerGateway(300);
    await gateway.publish(ADD_MEMBERS, { conversationId: 'slow-chat', userIds: ['slow', 'bystander'] });
    const bystander = connectWs(gateway.wsUrl, await tokenFor('bystander'));
    const bystanderMessages = record(bystander.client, NEW_MESSAGE, { conversationId: 'slow-chat' });

    const slow = await openRawSocket(gateway.wsUrl);
    await slow.init(await tokenFor('slow'));
    slow.send({ id: 'chat', type: 'subscribe', payload: { query: NEW_MESSAGE, variables: { conversationId: 'slow-chat' } } });
    await gateway.waitForSubscribers(topics.conversationMessages('slow-chat'), 2);
    slow.socket.pause();

    const text = 'x'.repeat(4_000);
    let published = 0;
    let maxHeld = 0;
    while (published < 10_000 && (await metricValue(gateway, 'limitTrips', { limit: 'slow_consumer' })) === 0) {
      for (let index = 0; index < 50; index++) {
        published++;
        await gateway.app.services.publisher.publish('newMessage', { messageId: `m${published}`, conversationId: 'slow-chat', senderId: 'bystander', text });
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
      maxHeld = Math.max(maxHeld, heldBytesOf(gateway, 'slow'));
    }
    expect(await metricValue(gateway, 'limitTrips', { limit: 'slow_consumer' })).toBe(1);
    expect(maxHeld).toBeLessThanOrEqual(2 * BOUND + 8 * 1024);

    // Once it reads again it finds the close at the end of what was queued.
    slow.socket.resume();
    const closed = await slow.waitForClose(5_000);
    expect(closed).toEqual({ code: 4292, reason: 'Slow consumer: events were not read in time' });
    await waitUntil(() => gateway.app.webSockets.connectionCount() === 1, 'only the bystander to be left');

    await bystanderMessages.waitForResults(published);
    expect(bystanderMessages.results.map((result) => (result.data?.['newMessage'] as { messageId: string }).messageId)).toEqual(
      Array.from({ length: published }, (_, index) => `m${index + 1}`),
    );
    expect(bystander.closes).toEqual([]);
  }, 60_000);

  it('ends an SSE subscription whose client stops reading with SLOW_CONSUMER, holding a bounded backlog; others lose nothing', async () => {
    const gateway = await startSlowConsumerGateway(600_000);
    const bystander = connectWs(gateway.wsUrl, await tokenFor('bystander'));
    const bystanderPrices = record(bystander.client, PRICE_UPDATED, { hotelId: 'sse-hotel' });

    // A raw SSE request (Yoga's distinct-connections mode) whose body is never read.
    const token = await tokenFor('sse-slow');
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const sse = httpRequest(gateway.httpUrl, {
        method: 'POST',
        headers: { accept: 'text/event-stream', 'content-type': 'application/json', authorization: `Bearer ${token}` },
      });
      sse.on('response', resolve);
      sse.on('error', reject);
      sse.end(JSON.stringify({ query: BIG_PRICES, variables: { hotelId: 'sse-hotel' } }));
    });
    expect(response.headers['content-type']).toContain('text/event-stream');
    response.pause();
    await gateway.waitForSubscribers(topics.hotelPrices('sse-hotel'), 2);

    const heapBefore = heapAfterGc();
    let published = 0;
    while (published < 8_000 && (await metricValue(gateway, 'limitTrips', { limit: 'slow_consumer' })) === 0) {
      for (let index = 0; index < 50; index++) {
        published++;
        await gateway.app.services.publisher.publish('priceUpdated', { hotelId: 'sse-hotel', roomType: ROOM_TYPES[0] as string, price: { amountMinor: published, currency: 'EUR' } });
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await metricValue(gateway, 'limitTrips', { limit: 'slow_consumer' })).toBe(1);
    // What the server held for it: at most MAX_PENDING_RESULTS results, not every event.
    expect(heapAfterGc() - heapBefore).toBeLessThan(48 * 1024 * 1024);
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.hotelPrices('sse-hotel')) === 1, 'the SSE subscription to end');

    // Reading at last, the client finds the backlog and then the reason its stream ended.
    response.resume();
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => (body += chunk));
    await new Promise((resolve) => response.on('end', resolve));
    expect(body).toContain('"code":"SLOW_CONSUMER"');

    await bystanderPrices.waitForResults(published);
    expect(bystanderPrices.results).toHaveLength(published);
    expect(bystander.closes).toEqual([]);
  }, 60_000);
});
