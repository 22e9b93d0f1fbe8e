import {
  execute,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  parse,
  subscribe,
  type ExecutionResult,
  type GraphQLInputType,
  type GraphQLNamedType,
} from 'graphql';
import { beforeEach, describe, expect, it } from 'vitest';
import { ANONYMOUS, type Principal } from '../src/auth/principal.js';
import type { Role } from '../src/config/config.js';
import type { EventEnvelope } from '../src/events/contracts.js';
import type { GatewayServices, GraphQLContext } from '../src/schema/context.js';
import { BACKENDS, type BackendName } from './support/backends.js';
import { servicesOn } from './support/services.js';
import { buildSchema } from '../src/schema/index.js';
import { BOOKING_UPDATED, CHAT_RESPONSE, NEW_MESSAGE, NOTIFICATION_CREATED, USER_TYPING } from './support/operations.js';

/** Schema-level tests: graphql-js against the Pothos schema with hand-made contexts, no server. */
const schema = buildSchema();

const user = (userId: string, ...roles: Role[]): Principal => ({
  kind: 'user',
  userId,
  roles: new Set(roles.length ? roles : ['user']),
  expiresAt: undefined,
  issuedAt: undefined,
});

async function subscribeAs(shared: GatewayServices, principal: Principal, query: string, variables: Record<string, unknown> = {}) {
  const contextValue: GraphQLContext = { principal, services: shared, transport: 'websocket', log: shared.logger };
  return subscribe({ schema, document: parse(query), variableValues: variables, contextValue });
}

function errorCodeOf(result: unknown): unknown {
  return (result as ExecutionResult).errors?.[0]?.extensions?.['code'];
}

let backend: BackendName = 'memory';

async function setup() {
  const shared = await servicesOn(backend);
  await shared.directory.conversations.addMembers('conv-1', ['alice', 'bob']);
  await shared.directory.bookings.setParties('booking-1', { guestId: 'alice', hostId: 'hank' });
  const session = await shared.directory.chatSessions.create('alice');
  return { shared, sessionId: session.id };
}

describe.each(BACKENDS)('with the %s directory', (name) => {
  beforeEach(() => {
    backend = name;
  });

  describe('who may open each subscription (DESIGN §3)', () => {
    it.each([
      ['newMessage: non-member', NEW_MESSAGE, { conversationId: 'conv-1' }, user('mallory')],
      ['newMessage: even an admin who is not a member', NEW_MESSAGE, { conversationId: 'conv-1' }, user('root', 'admin')],
      ['newMessage: unknown conversation', NEW_MESSAGE, { conversationId: 'conv-unknown' }, user('alice')],
      ['userTyping: non-member', USER_TYPING, { conversationId: 'conv-1' }, user('mallory')],
      ['bookingUpdated: not the guest or host', BOOKING_UPDATED, { bookingId: 'booking-1' }, user('mallory')],
      ['bookingUpdated: admin is not a party', BOOKING_UPDATED, { bookingId: 'booking-1' }, user('root', 'admin')],
      ['bookingUpdated: unknown booking', BOOKING_UPDATED, { bookingId: 'booking-x' }, user('alice')],
      ["notificationCreated: another user's, as a non-admin", NOTIFICATION_CREATED, { userId: 'alice' }, user('mallory', 'user', 'host', 'service')],
    ])('refuses %s with FORBIDDEN', async (_case, query, variables, principal) => {
      const { shared } = await setup();
      const result = await subscribeAs(shared, principal, query, variables);
      expect(errorCodeOf(result)).toBe('FORBIDDEN');
      expect(shared.bus.activeTopicCount()).toBe(0);
    });

    it("refuses chatResponse on someone else's session with FORBIDDEN", async () => {
      const { shared, sessionId } = await setup();
      expect(errorCodeOf(await subscribeAs(shared, user('mallory'), CHAT_RESPONSE, { sessionId }))).toBe('FORBIDDEN');
      expect(errorCodeOf(await subscribeAs(shared, user('root', 'admin'), CHAT_RESPONSE, { sessionId }))).toBe('FORBIDDEN');
    });

    it.each([
      ['newMessage: member', NEW_MESSAGE, { conversationId: 'conv-1' }, user('bob')],
      ['userTyping: member', USER_TYPING, { conversationId: 'conv-1' }, user('alice')],
      ['bookingUpdated: guest', BOOKING_UPDATED, { bookingId: 'booking-1' }, user('alice')],
      ['bookingUpdated: host', BOOKING_UPDATED, { bookingId: 'booking-1' }, user('hank', 'host')],
      ['bookingUpdated: all my bookings', BOOKING_UPDATED, {}, user('mallory')],
      ['notificationCreated: my own', NOTIFICATION_CREATED, {}, user('mallory')],
      ['notificationCreated: naming myself', NOTIFICATION_CREATED, { userId: 'mallory' }, user('mallory')],
      ["notificationCreated: an admin naming another user", NOTIFICATION_CREATED, { userId: 'alice' }, user('root', 'admin')],
    ])('allows %s', async (_case, query, variables, principal) => {
      const { shared } = await setup();
      const result = await subscribeAs(shared, principal, query, variables);
      expect(Symbol.asyncIterator in (result as object)).toBe(true);
      await (result as AsyncGenerator).return(undefined);
    });

    it('allows the owner on their chat session', async () => {
      const { shared, sessionId } = await setup();
      const result = await subscribeAs(shared, user('alice'), CHAT_RESPONSE, { sessionId });
      expect(Symbol.asyncIterator in (result as object)).toBe(true);
    });

    it('refuses anonymous callers every root field except viewer and priceUpdated, with UNAUTHENTICATED', async () => {
      const { shared } = await setup();
      const publicFields = new Set(['Query.viewer', 'Subscription.priceUpdated']);
      const checked: string[] = [];
      for (const rootType of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
        if (!rootType) continue;
        for (const field of Object.values(rootType.getFields())) {
          const coordinate = `${rootType.name}.${field.name}`;
          if (publicFields.has(coordinate)) continue;
          // Build the smallest valid operation for the field, with placeholder arguments.
          const args = field.args
            .filter((arg) => isNonNullType(arg.type))
            .map((arg) => `${arg.name}: ${literalFor(arg.type)}`);
          const namedType = getNamedType(field.type);
          const selection = isObjectType(namedType) ? ` { __typename }` : '';
          const keyword = rootType === schema.getQueryType() ? 'query' : rootType === schema.getMutationType() ? 'mutation' : 'subscription';
          const query = `${keyword} { ${field.name}${args.length ? `(${args.join(', ')})` : ''}${selection} }`;
          const contextValue: GraphQLContext = { principal: ANONYMOUS, services: shared, transport: 'http', log: shared.logger };
          const run = keyword === 'subscription' ? subscribe : execute;
          const result = await run({ schema, document: parse(query), contextValue });
          expect(errorCodeOf(result), coordinate).toBe('UNAUTHENTICATED');
          checked.push(coordinate);
        }
      }
      expect(checked.length).toBeGreaterThanOrEqual(17);
    });
  });

  /** A valid GraphQL literal for any input type, so only authorization can refuse the operation. */
  function literalFor(type: GraphQLInputType): string {
    if (isNonNullType(type)) return literalFor(type.ofType);
    if (isListType(type)) return `[${literalFor(type.ofType)}]`;
    if (isEnumType(type)) return type.getValues()[0]?.name ?? '';
    if (isInputObjectType(type)) {
      const fields = Object.values(type.getFields()).filter((field) => isNonNullType(field.type));
      return `{ ${fields.map((field) => `${field.name}: ${literalFor(field.type)}`).join(', ')} }`;
    }
    const scalars: Record<string, string> = { Int: '1', Float: '1', Boolean: 'true', DateTime: '"2026-01-01T00:00:00Z"', Date: '"2026-01-01"' };
    return scalars[(type as GraphQLNamedType).name] ?? '"x"';
  }

  describe('what each subscriber may see of an event (per-field rules)', () => {
    const bookingEvent: EventEnvelope<'bookingUpdated'> = {
      id: 'evt-1',
      type: 'bookingUpdated',
      version: 1,
      occurredAt: '2026-11-22T10:00:00.000Z',
      data: {
        bookingId: 'booking-1',
        hotelId: 'hotel-1',
        guestId: 'alice',
        hostId: 'hank',
        status: 'CONFIRMED',
        previousStatus: null,
        checkIn: '2026-12-24',
        checkOut: '2026-12-27',
        totalPrice: { amountMinor: 45_000, currency: 'EUR' },
      },
    };
    const priceEvent: EventEnvelope<'priceUpdated'> = {
      id: 'evt-2',
      type: 'priceUpdated',
      version: 1,
      occurredAt: '2026-11-22T10:00:00.000Z',
      data: {
        hotelId: 'hotel-1',
        roomType: 'SUITE',
        price: { amountMinor: 1_000, currency: 'JPY' },
        previousPrice: null,
        supplierCost: { amountMinor: 800, currency: 'JPY' },
      },
    };

    /** graphql-js maps each source event through execute() with the event as rootValue. */
    async function deliver(event: EventEnvelope, principal: Principal, query: string, variables: Record<string, unknown> = {}) {
      const { shared } = await setup();
      return execute({ schema, document: parse(query), rootValue: event, variableValues: variables, contextValue: { principal, services: shared } });
    }

    it.each([
      ['the guest', user('alice'), true],
      ['the host', user('hank', 'host'), true],
      ['an admin', user('root', 'admin'), true],
      ['anyone else', user('mallory', 'host', 'service'), false],
    ])('booking totalPrice is shown to %s', async (_who, principal, visible) => {
      const result = await deliver(bookingEvent, principal, BOOKING_UPDATED, { bookingId: 'booking-1' });
      const booking = (result.data as { bookingUpdated: Record<string, unknown> }).bookingUpdated;
      expect(booking['status']).toBe('CONFIRMED');
      if (visible) {
        expect(booking['totalPrice']).toEqual({ amount: '450.00', currency: 'EUR' });
        expect(result.errors).toBeUndefined();
      } else {
        expect(booking['totalPrice']).toBeNull();
        expect(result.errors?.map((error) => [error.path?.join('.'), error.extensions['code']])).toEqual([
          ['bookingUpdated.totalPrice', 'FORBIDDEN'],
        ]);
      }
    });

    it('supplier cost and margin are admin-only, in currencies without minor units too', async () => {
      const query = `subscription { priceUpdated(hotelId: "hotel-1") { roomType price { amount } supplierCost { amount } margin { amount currency } } }`;
      const admin = await deliver(priceEvent, user('root', 'admin'), query);
      expect(admin.errors).toBeUndefined();
      expect(admin.data).toEqual({
        priceUpdated: { roomType: 'SUITE', price: { amount: '1000' }, supplierCost: { amount: '800' }, margin: { amount: '200', currency: 'JPY' } },
      });
      const host = await deliver(priceEvent, user('hank', 'host'), query);
      expect(host.data).toEqual({ priceUpdated: { roomType: 'SUITE', price: { amount: '1000' }, supplierCost: null, margin: null } });
      expect(host.errors?.map((error) => error.extensions['code'])).toEqual(['FORBIDDEN', 'FORBIDDEN']);
    });
  });
});
