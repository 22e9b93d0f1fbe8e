import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createRedisEventBus } from '../src/bus/redis-event-bus.js';
import { decodeUtf8, membershipChangeSchema, parseChannelMessageBytes, type TidingsEvent } from '../src/events/contracts.js';
import { topics } from '../src/events/topics.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { createRedisConnections } from '../src/redis/connections.js';
import { sharedRedis } from './support/backends.js';
import { randomPrefix } from './support/redis-server.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { PRICE_UPDATED } from './support/operations.js';
import { take, waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * docs/CHANNELS.md: a message that is not UTF-8 is dropped as `invalid_json`. Over a real
 * redis-server, with raw bytes PUBLISHed by a plain ioredis client, as a non-JS service would.
 */

/** A newMessage envelope as bytes, with `text` spliced in as raw bytes. */
function newMessageBytes(id: string, text: Buffer): Buffer {
  const [before, after] = JSON.stringify({
    id,
    type: 'newMessage',
    version: 1,
    occurredAt: '2026-11-22T09:00:00Z',
    data: { messageId: `m-${id}`, conversationId: 'conv-1', senderId: 'bob', text: '@TEXT@' },
  }).split('@TEXT@') as [string, string];
  return Buffer.concat([Buffer.from(before, 'utf8'), text, Buffer.from(after, 'utf8')]);
}

/** Invalid UTF-8 inside a JSON string value: each would decode leniently to U+FFFD and pass the schema. */
const INVALID_TEXTS: Array<[string, Buffer]> = [
  ['a stray 0xff byte', Buffer.from([0x63, 0x61, 0x66, 0xff])],
  ['a lone continuation byte', Buffer.from([0x68, 0x69, 0x80])],
  ['an overlong "/"', Buffer.from([0xc0, 0xaf])],
  ['an encoded surrogate half', Buffer.from([0xed, 0xa0, 0x80])],
  ['a truncated 3-byte sequence', Buffer.from([0xe2, 0x82, 0x61])],
  ['a code point above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
];

const VALID_TEXT = 'Grüße aus Köln, café à 5 € — 👋🏽 日本語 ✓';

async function redisBus() {
  const redis = await sharedRedis();
  const logger = pino({ level: 'silent' });
  const metrics = createMetrics();
  const prefix = randomPrefix();
  const connections = createRedisConnections(redis.url, logger);
  const bus = createRedisEventBus({ connections, prefix, maxEventBytes: 65_536, logger, metrics });
  const publisher = redis.client();
  onTestFinished(async () => {
    await bus.close();
    await connections.close();
  });
  await waitUntil(() => bus.isReady(), 'redis connections');
  const dropped = async (reason: string) =>
    (await metrics.eventsDropped.get()).values.find((value) => value.labels.reason === reason && value.labels.source === 'redis')?.value ?? 0;
  const waitForUpstream = (topic: string) =>
    waitUntil(async () => {
      const [, count] = (await publisher.pubsub('NUMSUB', `${prefix}${topic}`)) as [string, number];
      return count > 0;
    }, `SUBSCRIBE ${topic}`);
  return { bus, publisher, prefix, dropped, waitForUpstream };
}


const textOf = (event: TidingsEvent) => (event.type === 'newMessage' ? event.data.text : undefined);

describe('Redis channel messages that are not UTF-8', () => {
  it('are dropped and counted as invalid_json once per instance, never delivered; valid multi-byte text arrives intact', async () => {
    const { bus, publisher, prefix, dropped, waitForUpstream } = await redisBus();
    const topic = topics.conversationMessages('conv-1');
    const channel = `${prefix}${topic}`;
    // Two local subscribers: validation happens once per message, not once per subscriber.
    const first = take(bus.subscribe(topic), 3);
    const second = take(bus.subscribe(topic), 3);
    await waitUntil(() => bus.subscriberCount(topic) === 2, 'two subscribers');
    await waitForUpstream(topic);

    await publisher.publish(channel, newMessageBytes('evt-before', Buffer.from('hello', 'utf8')));
    for (const [index, [, text]] of INVALID_TEXTS.entries()) await publisher.publish(channel, newMessageBytes(`evt-bad-${index}`, text));
    // The same document with valid text, to be sure only the bytes make the difference.
    await publisher.publish(channel, newMessageBytes('evt-multibyte', Buffer.from(VALID_TEXT, 'utf8')));
    await publisher.publish(channel, newMessageBytes('evt-after', Buffer.from('bye', 'utf8')));

    for (const received of [await first, await second]) {
      expect(received.map((event) => event.id)).toEqual(['evt-before', 'evt-multibyte', 'evt-after']);
      expect(received.map(textOf)).toEqual(['hello', VALID_TEXT, 'bye']);
      expect(received.some((event) => textOf(event)?.includes('\uFFFD'))).toBe(false);
    }
    expect(await dropped('invalid_json')).toBe(INVALID_TEXTS.length);
    expect(await dropped('shape')).toBe(0);
  });

  it('counts a payload over the size limit as too_large before looking at its bytes', async () => {
    const { bus, publisher, prefix, dropped, waitForUpstream } = await redisBus();
    const topic = topics.conversationMessages('conv-1');
    const received = take(bus.subscribe(topic), 1);
    await waitForUpstream(topic);
    await publisher.publish(`${prefix}${topic}`, Buffer.concat([newMessageBytes('evt-huge', Buffer.from([0xff])), Buffer.alloc(70_000, 0x20)]));
    await publisher.publish(`${prefix}${topic}`, newMessageBytes('evt-ok', Buffer.from('ok', 'utf8')));
    expect((await received).map((event) => event.id)).toEqual(['evt-ok']);
    expect(await dropped('too_large')).toBe(1);
    expect(await dropped('invalid_json')).toBe(0);
  });
});

describe('decodeUtf8 and parseChannelMessageBytes', () => {
  it('decode valid UTF-8 exactly and refuse everything else', () => {
    expect(decodeUtf8(Buffer.from(VALID_TEXT, 'utf8'))).toBe(VALID_TEXT);
    expect(decodeUtf8(Buffer.alloc(0))).toBe('');
    // A view into a larger buffer decodes only its own bytes.
    const backing = Buffer.from('xx{"a":"é"}yy', 'utf8');
    expect(decodeUtf8(backing.subarray(2, backing.length - 2))).toBe('{"a":"é"}');
    for (const [name, bytes] of INVALID_TEXTS) expect(decodeUtf8(bytes), name).toBeUndefined();
  });

  it('give control-message readers the same invalid_json for non-UTF-8 bytes', () => {
    const valid = Buffer.from(JSON.stringify({ conversationId: 'conv-1', removed: ['bob'] }), 'utf8');
    expect(parseChannelMessageBytes(valid, membershipChangeSchema)).toMatchObject({ ok: true, data: { conversationId: 'conv-1' } });
    const invalid = Buffer.concat([Buffer.from('{"conversationId":"conv-1","removed":["bo', 'utf8'), Buffer.from([0xff]), Buffer.from('"]}', 'utf8')]);
    expect(parseChannelMessageBytes(invalid, membershipChangeSchema)).toMatchObject({ ok: false, reason: 'invalid_json' });
    expect(parseChannelMessageBytes(Buffer.from('{"conversationId": 5}', 'utf8'), membershipChangeSchema)).toMatchObject({ ok: false, reason: 'shape' });
  });
});

describe('non-UTF-8 control messages (membership, session revocations)', () => {
  it('drops them as invalid_json, counted per channel, and applies none of them', async () => {
    const redis = await sharedRedis();
    const prefix = randomPrefix();
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix });
    const publisher = redis.client();
    const droppedFrom = async (source: string) =>
      (await gateway.app.metrics.eventsDropped.get()).values.find((value) => value.labels.reason === 'invalid_json' && value.labels.source === source)?.value ?? 0;
    await waitUntil(async () => {
      const [, membership, , sessions] = (await publisher.pubsub('NUMSUB', `${prefix}membership`, `${prefix}sessions:revoked`)) as [string, number, string, number];
      return membership > 0 && sessions > 0;
    }, 'the control channels');
    // A removal and a revocation whose user id holds a byte that is not UTF-8.
    const spliced = (json: string) => {
      const [before, after] = json.split('@') as [string, string];
      return Buffer.concat([Buffer.from(before), Buffer.from([0xff]), Buffer.from(after)]);
    };
    await publisher.publish(`${prefix}membership`, spliced(JSON.stringify({ conversationId: 'conv-1', removed: ['al@'] })));
    await publisher.publish(`${prefix}sessions:revoked`, spliced(JSON.stringify({ userId: 'al@', revokedAt: Date.now() })));
    await waitUntil(async () => (await droppedFrom('membership')) === 1 && (await droppedFrom('sessions')) === 1, 'both to be dropped');
    // Refused as bytes, not decoded into U+FFFD and then judged by shape.
    const shapeDrops = (await gateway.app.metrics.eventsDropped.get()).values.filter((value) => value.labels.reason === 'shape');
    expect(shapeDrops).toEqual([]);
    // The channels still work: a valid revocation after them ends its user's connection.
    const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
    record(alice.client, PRICE_UPDATED, { hotelId: 'h1' });
    await alice.waitForConnected();
    await publisher.publish(`${prefix}sessions:revoked`, JSON.stringify({ userId: 'alice', revokedAt: Date.now() + 1_000 }));
    expect((await alice.waitForClose()).code).toBe(4403);
  });
});
