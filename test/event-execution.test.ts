import { execute, GraphQLError, parse, type ExecutionResult } from 'graphql';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/principal.js';
import { REVOKED } from '../src/bus/guarded-stream.js';
import { parseEvent, type TidingsEvent } from '../src/events/contracts.js';
import { buildSchema } from '../src/schema/index.js';
import { createEventExecution } from '../src/server/event-execution.js';
import { BOOKING_UPDATED, CHAT_RESPONSE, NEW_MESSAGE, NOTIFICATION_CREATED, PRICE_UPDATED, PRICE_UPDATED_ADMIN_FIELDS, USER_TYPING } from './support/operations.js';

/**
 * The compiled path (graphql-jit) against graphql-js itself, in-process: every event type, every
 * per-field rule, for each kind of viewer, errors included, byte for byte once serialized, and
 * still so after an error is rebuilt from its nodes as Yoga's SSE serializer and error masking
 * do. `test/execution-equivalence.test.ts` does the same end to end, over WebSocket and SSE.
 */
const schema = buildSchema();
const logger = pino({ level: 'silent' });

const user = (userId: string, ...roles: string[]): Principal =>
  ({ kind: 'user', userId, roles: new Set(['user', ...roles]), expiresAt: undefined, issuedAt: undefined }) as Principal;
const VIEWERS: Record<string, Principal> = {
  guest: user('alice'),
  host: user('hank', 'host'),
  stranger: user('mallory'),
  admin: user('root', 'admin'),
};

const envelope = (type: string, data: Record<string, unknown>): TidingsEvent => {
  const parsed = parseEvent({ id: `e-${type}`, type, version: 1, occurredAt: '2026-12-07T10:00:00.000Z', data });
  if (!parsed.ok) throw new Error(`test event ${type} is invalid: ${JSON.stringify(parsed.issues)}`);
  return parsed.event;
};
const money = (amountMinor: number, currency = 'EUR') => ({ amountMinor, currency });
const EVENTS = {
  price: envelope('priceUpdated', { hotelId: 'h1', roomType: 'DOUBLE', price: money(12_900), previousPrice: money(13_900), supplierCost: money(10_000) }),
  priceInYen: envelope('priceUpdated', { hotelId: 'h1', roomType: 'DOUBLE', price: money(12_900, 'JPY'), supplierCost: money(10_000, 'USD') }),
  message: envelope('newMessage', { messageId: 'm1', conversationId: 'c1', senderId: 'alice', text: 'Grüße 👋 "quoted" \\ \u2028' }),
  typing: envelope('userTyping', { conversationId: 'c1', userId: 'alice', state: 'STARTED' }),
  booking: envelope('bookingUpdated', { bookingId: 'b1', hotelId: 'hotel-1', guestId: 'alice', hostId: 'hank', status: 'CONFIRMED', previousStatus: 'PENDING', checkIn: '2026-12-24', checkOut: '2026-12-27', totalPrice: money(45_000) }),
  notification: envelope('notificationCreated', { notificationId: 'n1', userId: 'alice', kind: 'BOOKING', title: 'Confirmed', body: 'See you', link: '/b/1' }),
  chat: envelope('chatResponse', { sessionId: 's1', userId: 'alice', replyId: 'r1', sequence: 3, status: 'CHUNK', text: 'Hello' }),
};

const DOCUMENTS: Array<{ name: string; query: string; variables: Record<string, unknown>; events: TidingsEvent[] }> = [
  { name: 'priceUpdated', query: PRICE_UPDATED, variables: { hotelId: 'h1' }, events: [EVENTS.price, EVENTS.priceInYen] },
  { name: 'priceUpdated, admin fields', query: PRICE_UPDATED_ADMIN_FIELDS, variables: { hotelId: 'h1' }, events: [EVENTS.price, EVENTS.priceInYen] },
  { name: 'newMessage', query: NEW_MESSAGE, variables: { conversationId: 'c1' }, events: [EVENTS.message, REVOKED as unknown as TidingsEvent] },
  { name: 'userTyping', query: USER_TYPING, variables: { conversationId: 'c1' }, events: [EVENTS.typing, REVOKED as unknown as TidingsEvent] },
  { name: 'bookingUpdated', query: BOOKING_UPDATED, variables: {}, events: [EVENTS.booking] },
  { name: 'notificationCreated', query: NOTIFICATION_CREATED, variables: {}, events: [EVENTS.notification] },
  { name: 'chatResponse', query: CHAT_RESPONSE, variables: { sessionId: 's1' }, events: [EVENTS.chat, REVOKED as unknown as TidingsEvent] },
  {
    name: 'aliases, fragments, directives, __typename',
    query: /* GraphQL */ `
      subscription Aliased($hotelId: ID!, $withCost: Boolean!, $skipRoom: Boolean!) {
        priceUpdated(hotelId: $hotelId) {
          __typename
          kind: __typename
          ...Times
          ... on PriceUpdate { room: roomType @skip(if: $skipRoom) }
          cost: supplierCost @include(if: $withCost) { amount }
          margin { amount currency }
          price { ...Amount minor: amountMinor }
        }
      }
      fragment Times on Event { id occurredAt }
      fragment Amount on Money { amount currency }`,
    variables: { hotelId: 'h1', withCost: true, skipRoom: false },
    events: [EVENTS.price],
  },
];

/** As clients get it: serialized, and again after each error is rebuilt from its nodes and positions (what Yoga's SSE serializer does). */
function shown(result: ExecutionResult): [string, string] {
  const rebuilt = result.errors?.map((error) => new GraphQLError(error.message, { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path, extensions: error.extensions }));
  return [JSON.stringify(result), JSON.stringify(rebuilt ? { ...result, errors: rebuilt } : result)];
}

async function bothWays(query: string, variables: Record<string, unknown>, principal: Principal, event: unknown) {
  const document = parse(query);
  const contextValue = { principal, services: {}, transport: 'websocket', log: logger };
  const args = { schema, document, variableValues: variables, contextValue };
  const reference = await execute({ ...args, rootValue: event });
  const compiled = await createEventExecution({ compileAfter: 0, logger }).run(args, event);
  return { reference, compiled };
}

describe('compiled event execution', () => {
  for (const { name, query, variables, events } of DOCUMENTS) {
    for (const [viewer, principal] of Object.entries(VIEWERS)) {
      it(`matches graphql-js: ${name}, as ${viewer}`, async () => {
        for (const event of events) {
          const { reference, compiled } = await bothWays(query, variables, principal, event);
          expect(shown(compiled)).toEqual(shown(reference));
        }
      });
    }
  }

  it('matches graphql-js on the per-field rules: admin fields and booking totals are withheld with FORBIDDEN', async () => {
    const price = await bothWays(PRICE_UPDATED_ADMIN_FIELDS, { hotelId: 'h1' }, VIEWERS['guest']!, EVENTS.price);
    expect(price.compiled.errors?.map((error) => [error.extensions['code'], error.path, error.locations])).toEqual([
      ['FORBIDDEN', ['priceUpdated', 'supplierCost'], [{ line: 6, column: 7 }]],
      ['FORBIDDEN', ['priceUpdated', 'margin'], [{ line: 7, column: 7 }]],
    ]);
    const booking = await bothWays(BOOKING_UPDATED, {}, VIEWERS['stranger']!, EVENTS.booking);
    expect(booking.compiled.errors?.map((error) => error.extensions['code'])).toEqual(['FORBIDDEN']);
    expect(shown(booking.compiled)).toEqual(shown(booking.reference));
    const allowed = await bothWays(BOOKING_UPDATED, {}, VIEWERS['host']!, EVENTS.booking);
    expect(allowed.compiled.errors).toBeUndefined();
    expect((allowed.compiled.data?.['bookingUpdated'] as { totalPrice: unknown }).totalPrice).toEqual({ amount: '450.00', currency: 'EUR' });
  });

  it('matches graphql-js on errors it did not expect: a non-null field without a value, a value its type cannot serialize, a resolver that throws', async () => {
    const broken: unknown[] = [
      // A non-null field resolving to null: null bubbles up to the nullable root field.
      { ...EVENTS.notification, data: { ...EVENTS.notification.data, title: null } },
      // An enum value the schema does not know.
      { ...EVENTS.notification, data: { ...EVENTS.notification.data, kind: 'SPAM' } },
      // A resolver reading through something that is not there throws a TypeError.
      { ...EVENTS.notification, data: undefined },
      // Two at once: graphql-js stops at the first non-null error in an object, graphql-jit does not.
      { ...EVENTS.notification, data: { ...EVENTS.notification.data, title: null, kind: 'SPAM' } },
      // An ID that cannot be one.
      { ...EVENTS.booking, data: { ...EVENTS.booking.data, guestId: 42.5 } },
    ];
    for (const event of broken) {
      const query = (event as TidingsEvent).type === 'bookingUpdated' ? BOOKING_UPDATED : NOTIFICATION_CREATED;
      const { reference, compiled } = await bothWays(query, {}, VIEWERS['admin']!, event);
      expect(reference.errors?.length, JSON.stringify(event)).toBeGreaterThan(0);
      expect(shown(compiled)).toEqual(shown(reference));
    }
  });

  it('runs a document on graphql-js until it has executed compileAfter times, then compiled, once', async () => {
    const document = parse(NOTIFICATION_CREATED);
    const execution = createEventExecution({ compileAfter: 2, logger });
    const contextValue = { principal: VIEWERS['guest'], services: {}, transport: 'websocket', log: logger };
    const results: string[] = [];
    const compilations: number[] = [];
    for (let index = 0; index < 4; index++) {
      results.push(JSON.stringify(await execution.run({ schema, document, variableValues: {}, contextValue }, EVENTS.notification)));
      compilations.push(execution.compilations());
    }
    expect(compilations).toEqual([0, 0, 1, 1]);
    expect(new Set(results).size).toBe(1);
  });
});
