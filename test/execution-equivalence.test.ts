import { parse, subscribe } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { isAsyncIterable } from 'graphql-yoga';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Role } from '../src/config/config.js';
import { topics } from '../src/events/topics.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import {
  ADD_MEMBERS,
  BOOKING_UPDATED,
  bookingInput,
  CHAT_RESPONSE,
  NEW_MESSAGE,
  NOTIFICATION_CREATED,
  PRICE_UPDATED_ADMIN_FIELDS,
  priceInput,
  PUBLISH_BOOKING,
  PUBLISH_MESSAGE,
  PUBLISH_NOTIFICATION,
  PUBLISH_PRICE,
  SET_TYPING,
  START_CHAT,
  USER_TYPING,
} from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

const PUBLISH_CHAT_RESPONSE = 'mutation($input: PublishChatResponseInput!) { publishChatResponse(input: $input) { eventId } }';

/**
 * The shared deliveries (one execution per group of subscribers, over WebSocket and SSE) must
 * hand each subscriber exactly what graphql-js gives for that subscriber alone: the reference is
 * graphql's own `subscribe` on the gateway's schema, in this process, with the subscriber's
 * principal and the gateway's services. Every subscription field, every per-field rule, errors
 * included, byte for byte once serialized.
 */
async function bothWays(gateway: TestGateway, who: string, roles: Role[], query: string, variables: Record<string, unknown>) {
  const token = await tokenFor(who, roles);
  const socket = connectWs(gateway.wsUrl, token);
  const overSocket = record(socket.client, query, variables);
  const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  onTestFinished(() => sse.dispose());
  const overSse: unknown[] = [];
  sse.subscribe({ query, variables }, { next: (value) => void overSse.push(value), error: () => undefined, complete: () => undefined });
  const reference: unknown[] = [];
  const services = gateway.app.services;
  const stream = await subscribe({
    schema: gateway.app.yoga.getEnveloped({}).schema,
    document: parse(query),
    variableValues: variables,
    contextValue: { principal: { kind: 'user', userId: who, roles: new Set(roles), expiresAt: undefined, issuedAt: undefined }, services, transport: 'http', log: services.logger },
  });
  if (!isAsyncIterable(stream)) throw new Error(`the reference subscription was refused: ${JSON.stringify(stream)}`);
  onTestFinished(() => void stream.return?.());
  void (async () => {
    for await (const result of stream) reference.push(JSON.parse(JSON.stringify(result)));
  })();
  return {
    async expectSame(count: number) {
      await overSocket.waitForResults(count);
      await waitUntil(() => overSse.length >= count && reference.length >= count, 'the SSE and reference results');
      const expected = JSON.stringify(reference.slice(0, count));
      expect(JSON.stringify(overSocket.results.slice(0, count))).toBe(expected);
      expect(JSON.stringify(overSse.slice(0, count))).toBe(expected);
      return overSocket.results;
    },
  };
}

// graphql-js executes a document's first events, its graphql-jit compilation the later ones
// (src/server/event-execution.ts); with 0, every event here runs compiled.
const EXECUTIONS = [
  ['graphql-js', undefined],
  ['compiled', 0],
] as const;

describe.each(BACKENDS.flatMap((backend) => EXECUTIONS.map(([execution, after]) => [backend, execution, after] as const)))('shared deliveries over WebSocket and SSE agree with graphql-js (%s, %s)', (backend, _execution, compileAfter) => {
  it('on every subscription field and per-field rule', async () => {
    const gateway = await startGateway(await backendEnv(backend), { compileEventDocumentsAfter: compileAfter });
    // Prices: admin-only fields refused for a user, shown to an admin.
    const priceUser = await bothWays(gateway, 'pat', ['user'], PRICE_UPDATED_ADMIN_FIELDS, { hotelId: 'h1' });
    const priceAdmin = await bothWays(gateway, 'root', ['user', 'admin'], PRICE_UPDATED_ADMIN_FIELDS, { hotelId: 'h1' });
    await gateway.waitForSubscribers(topics.hotelPrices('h1'), 4);
    // Notifications, bookings (with and without an id), conversations, typing, chat.
    const notifications = await bothWays(gateway, 'alice', ['user'], NOTIFICATION_CREATED, {});
    await gateway.publish(PUBLISH_BOOKING, bookingInput('b1', 'alice', 'hank', 'PENDING'));
    const bookingsAll = await bothWays(gateway, 'alice', ['user'], BOOKING_UPDATED, {});
    const bookingOne = await bothWays(gateway, 'hank', ['user', 'host'], BOOKING_UPDATED, { bookingId: 'b1' });
    await gateway.publish(ADD_MEMBERS, { conversationId: 'c1', userIds: ['alice', 'bob'] });
    const messages = await bothWays(gateway, 'bob', ['user'], NEW_MESSAGE, { conversationId: 'c1' });
    const typing = await bothWays(gateway, 'bob', ['user'], USER_TYPING, { conversationId: 'c1' });
    const aliceToken = await tokenFor('alice');
    const session = (await gateway.http(START_CHAT, {}, aliceToken)).body.data?.['startChatSession'] as { id: string };
    const chat = await bothWays(gateway, 'alice', ['user'], CHAT_RESPONSE, { sessionId: session.id });
    await gateway.waitForSubscribers(topics.userNotifications('alice'), 2);
    await gateway.waitForSubscribers(topics.userBookings('alice'), 2);
    await gateway.waitForSubscribers(topics.userBookings('hank'), 2);
    await gateway.waitForSubscribers(topics.conversationMessages('c1'), 2);
    await gateway.waitForSubscribers(topics.conversationTyping('c1'), 2);
    await gateway.waitForSubscribers(topics.chatSession(session.id), 2);
    // 8 over WebSocket and 8 over SSE, all delivered by shared deliveries.
    await waitUntil(() => gateway.app.webSockets.sharedJoinedCount() === 16, `all 16 subscriptions shared (${gateway.app.webSockets.sharedJoinedCount()})`);

    await gateway.publish(PUBLISH_PRICE, priceInput('h1', 15_000));
    await gateway.publish(PUBLISH_NOTIFICATION, { input: { notificationId: 'n1', userId: 'alice', kind: 'BOOKING', title: 'Confirmed', body: 'See you', link: '/b/1' } });
    await gateway.publish(PUBLISH_BOOKING, bookingInput('b2', 'alice', 'hank', 'CONFIRMED'));
    await gateway.publish(PUBLISH_BOOKING, bookingInput('b1', 'alice', 'hank', 'CONFIRMED'));
    await gateway.publish(PUBLISH_MESSAGE, { input: { messageId: 'm1', conversationId: 'c1', senderId: 'alice', text: 'Grüße 👋' } });
    await gateway.http(SET_TYPING, { conversationId: 'c1', state: 'STARTED' }, aliceToken);
    await gateway.publish(PUBLISH_CHAT_RESPONSE, { input: { sessionId: session.id, userId: 'alice', replyId: 'r1', sequence: 0, status: 'TYPING' } });

    const [userPrice] = await priceUser.expectSame(1);
    expect(userPrice?.errors?.map((error) => error.extensions?.['code'])).toEqual(['FORBIDDEN', 'FORBIDDEN']);
    const [adminPrice] = await priceAdmin.expectSame(1);
    expect(adminPrice?.errors).toBeUndefined();
    await notifications.expectSame(1);
    const all = await bookingsAll.expectSame(2);
    expect(all.map((result) => (result.data?.['bookingUpdated'] as { bookingId: string }).bookingId)).toEqual(['b2', 'b1']);
    const one = await bookingOne.expectSame(1);
    expect(one[0]?.data?.['bookingUpdated']).toMatchObject({ bookingId: 'b1', totalPrice: { amount: '450.00' } });
    await messages.expectSame(1);
    await typing.expectSame(1);
    await chat.expectSame(1);
  }, 30_000);
});
