import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { allEventJsonSchemas, eventJsonSchema } from '../src/events/json-schemas.js';
import { EVENT_TYPES, parseEvent } from '../src/events/contracts.js';
import { topicsOf } from '../src/events/topics.js';
import { builtinReplyTo, chunkReply } from '../src/chat/builtin-responder.js';
import { createTypingThrottle } from '../src/publish/typing-throttle.js';
import { formatMoneyAmount } from '../src/schema/common.js';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv2020) => Ajv2020 }).default;

const envelope = (type: string, data: unknown, extra: Record<string, unknown> = {}) => ({
  id: 'evt-1',
  type,
  version: 1,
  occurredAt: '2026-11-22T10:00:00Z',
  data,
  ...extra,
});

const validData: Record<string, unknown> = {
  priceUpdated: { hotelId: 'h1', roomType: 'DOUBLE', price: { amountMinor: 100, currency: 'EUR' } },
  newMessage: { messageId: 'm1', conversationId: 'c1', senderId: 'u1', text: 'hi' },
  userTyping: { conversationId: 'c1', userId: 'u1', state: 'STARTED' },
  bookingUpdated: {
    bookingId: 'b1', hotelId: 'h1', guestId: 'g1', hostId: 'o1', status: 'CONFIRMED',
    checkIn: '2026-12-01', checkOut: '2026-12-03', totalPrice: { amountMinor: 1, currency: 'EUR' },
  },
  notificationCreated: { notificationId: 'n1', userId: 'u1', kind: 'SYSTEM', title: 'Hello' },
  chatResponse: { sessionId: 's1', userId: 'u1', replyId: 'r1', sequence: 0, status: 'TYPING' },
  chatMessageSent: { sessionId: 's1', userId: 'u1', messageId: 'm1', text: 'hi' },
  presenceChanged: { scope: 'conversation', scopeId: 'c1', changes: [{ userId: 'u1', change: 'JOINED', at: '2026-12-07T10:00:00.000Z' }] },
};

describe('event contracts', () => {
  it.each(EVENT_TYPES)('accepts a valid %s and fills defaults', (type) => {
    const result = parseEvent(envelope(type, validData[type]));
    expect(result.ok).toBe(true);
    if (result.ok) expect(topicsOf(result.event).length).toBeGreaterThan(0);
  });

  it('fills optional fields with explicit nulls and defaults', () => {
    const result = parseEvent(envelope('notificationCreated', validData['notificationCreated']));
    expect(result.ok && result.event.data).toEqual({ notificationId: 'n1', userId: 'u1', kind: 'SYSTEM', title: 'Hello', body: '', link: null });
  });

  it.each([
    ['not an object', 'just a string', 'shape'],
    ['missing id', { ...envelope('newMessage', validData['newMessage']), id: undefined }, 'shape'],
    ['an id with a colon', envelope('newMessage', validData['newMessage'], { id: 'a:b' }), 'shape'],
    ['a bad occurredAt', envelope('newMessage', validData['newMessage'], { occurredAt: 'yesterday' }), 'shape'],
    ['an unknown type', envelope('hotelBurned', {}), 'unknown_type'],
    ['a prototype key as type', envelope('constructor', {}), 'unknown_type'],
    ['a future version', envelope('newMessage', validData['newMessage'], { version: 2 }), 'version'],
    ['data of the wrong shape', envelope('newMessage', { text: 5 }), 'shape'],
    ['a conversation id with a colon', envelope('newMessage', { ...(validData['newMessage'] as object), conversationId: 'x:y' }), 'shape'],
    ['checkOut before checkIn', envelope('bookingUpdated', { ...(validData['bookingUpdated'] as object), checkOut: '2026-11-01' }), 'shape'],
    ['a chunk without text', envelope('chatResponse', { ...(validData['chatResponse'] as object), status: 'CHUNK' }), 'shape'],
    ['a javascript: link', envelope('notificationCreated', { ...(validData['notificationCreated'] as object), link: 'javascript:alert(1)' }), 'shape'],
  ])('rejects %s', (_case, document, reason) => {
    const result = parseEvent(document);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason).toBe(reason);
      expect(result.issues.length).toBeGreaterThan(0);
    }
  });

  it('routes booking updates to both parties, once when they are the same user', () => {
    const result = parseEvent(envelope('bookingUpdated', validData['bookingUpdated']));
    expect(result.ok && topicsOf(result.event)).toEqual(['user:g1:booking', 'user:o1:booking']);
    const self = parseEvent(envelope('bookingUpdated', { ...(validData['bookingUpdated'] as object), hostId: 'g1' }));
    expect(self.ok && topicsOf(self.event)).toEqual(['user:g1:booking']);
  });
});

describe('money', () => {
  it.each([
    [12_950, 'EUR', '129.50'],
    [5, 'EUR', '0.05'],
    [0, 'USD', '0.00'],
    [1_000, 'JPY', '1000'],
    [1_234, 'BHD', '1.234'],
    [-250, 'EUR', '-2.50'],
  ])('formats %i minor units of %s as %s', (amountMinor, currency, expected) => {
    expect(formatMoneyAmount({ amountMinor, currency })).toBe(expected);
  });
});

describe('typing throttle', () => {
  it('passes a repeated STARTED once per interval and every change of state', () => {
    let now = 0;
    const throttle = createTypingThrottle(1_000, () => now);
    expect(throttle.admit('c', 'u', 'STARTED')).toBe(true);
    now = 500;
    expect(throttle.admit('c', 'u', 'STARTED')).toBe(false);
    expect(throttle.admit('c', 'other', 'STARTED')).toBe(true);
    expect(throttle.admit('c', 'u', 'STOPPED')).toBe(true);
    expect(throttle.admit('c', 'u', 'STARTED')).toBe(true);
    now = 1_600;
    expect(throttle.admit('c', 'u', 'STARTED')).toBe(true);
  });

  it('caps alternating states at four updates per interval', () => {
    let now = 0;
    const throttle = createTypingThrottle(1_000, () => now);
    const passed = [];
    for (let index = 0; index < 100; index++) {
      now = index; // all within one interval
      passed.push(throttle.admit('c', 'u', index % 2 === 0 ? 'STARTED' : 'STOPPED'));
    }
    expect(passed.filter(Boolean)).toHaveLength(4);
    now = 1_000;
    expect(throttle.admit('c', 'u', 'STARTED')).toBe(true);
  });
});

describe('built-in chat responder', () => {
  it('replies deterministically and chunks without losing text', () => {
    const reply = builtinReplyTo('  Is   breakfast included? ');
    expect(reply).toBe(builtinReplyTo('Is breakfast included?'));
    expect(reply).toContain('"Is breakfast included?" (3 words)');
    expect(chunkReply(reply).join('')).toBe(reply);
  });
});

describe('machine-readable contracts (docs/channels/*.schema.json)', () => {
  it('are up to date with the zod contracts (run `npm run contracts:print` after changing them)', () => {
    for (const { file, content } of allEventJsonSchemas()) {
      expect(readFileSync(new URL(`../${file}`, import.meta.url), 'utf8'), file).toBe(content);
    }
  });

  it('accept and reject the same documents as the gateway', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    for (const type of EVENT_TYPES) {
      const validate = ajv.compile(eventJsonSchema(type));
      const good = envelope(type, validData[type]);
      expect(validate(good), `${type}: ${JSON.stringify(validate.errors)}`).toBe(true);
      expect(parseEvent(good).ok).toBe(true);
      for (const bad of [
        { ...good, id: 'a:b' },
        { ...good, version: 2 },
        { ...good, occurredAt: 'yesterday' },
        { ...good, data: {} },
        { ...good, data: { ...(good.data as object), unexpected: true, ...firstFieldBroken(type) } },
      ]) {
        expect(validate(bad), `${type} should reject ${JSON.stringify(bad).slice(0, 120)}`).toBe(false);
        expect(parseEvent(bad).ok).toBe(false);
      }
    }
  });
});

/** Breaks the first required data field of an event type (wrong JSON type). */
function firstFieldBroken(type: string): Record<string, unknown> {
  const [first] = Object.keys(validData[type] as object);
  return { [first as string]: 12345 };
}
