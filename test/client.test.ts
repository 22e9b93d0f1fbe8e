import { fileURLToPath } from 'node:url';
import { pipe, subscribe } from 'wonka';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  BookingUpdatedSubscription,
  ChatResponseSubscription,
  createTidingsClient,
  LoggedOutError,
  NewMessageSubscription,
  NotificationCreatedSubscription,
  PriceUpdatedSubscription,
  SendChatMessageMutation,
  SetTypingMutation,
  StartChatSessionMutation,
  UserTypingSubscription,
  ViewerQuery,
  type ConnectionStatus,
  type TidingsClientOptions,
} from '@tidings/client';
import { buildApp, type App } from '../src/app.js';
import { topics } from '../src/events/topics.js';
import { startGateway, testConfig, tokenFor, type TestGateway } from './support/gateway.js';
import { startHttpOnlyProxy } from './support/http-only-proxy.js';
import { ADD_MEMBERS, bookingInput, priceInput, PUBLISH_BOOKING, PUBLISH_MESSAGE, PUBLISH_NOTIFICATION, PUBLISH_PRICE } from './support/operations.js';
import { freePort } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { onTestFinished } from 'vitest';

const TRUSTED_MANIFEST = fileURLToPath(new URL('../client/src/generated/persisted-documents.json', import.meta.url));

function clientFor(url: string, getToken: TidingsClientOptions['getToken'], extra: Partial<TidingsClientOptions> = {}) {
  const client = createTidingsClient({
    url,
    getToken,
    webSocketImpl: WebSocket,
    backoff: { initialDelayMs: 50, maxDelayMs: 300 },
    offlineAfterMs: 500,
    ...extra,
  });
  const statuses: Array<`${ConnectionStatus}/${string}`> = [];
  client.connection.subscribe((state) => {
    const label = `${state.status}/${state.transport}` as const;
    if (statuses.at(-1) !== label) statuses.push(label);
  });
  onTestFinished(() => client.dispose());
  return { client, statuses };
}

/** Collects what an urql subscription source emits. */
function collect<T>(source: Parameters<typeof pipe>[0]) {
  const values: T[] = [];
  const { unsubscribe } = pipe(source as never, subscribe((result: T) => values.push(result)));
  onTestFinished(unsubscribe);
  return { values, unsubscribe };
}

/** A gateway on a fixed port that can be stopped and started again. */
async function restartableGateway() {
  const port = await freePort();
  let app: App | undefined;
  const start = async () => {
    app = buildApp(testConfig({ PORT: String(port) }));
    await app.start();
    return app;
  };
  await start();
  onTestFinished(() => app?.stop());
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    app: () => app as App,
    stop: async () => app?.stop(),
    start,
  };
}

const publishAsService = async (url: string, query: string, variables: Record<string, unknown>) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokenFor('svc', ['service'])}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { errors?: unknown };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
};

describe('@tidings/client against a real gateway', () => {
  it('delivers every subscription with its generated type', async () => {
    const gateway: TestGateway = await startGateway();
    await gateway.publish(ADD_MEMBERS, { conversationId: 'conv-1', userIds: ['alice', 'bob'] });
    await gateway.publish(PUBLISH_BOOKING, bookingInput('booking-1', 'alice', 'hank', 'PENDING'));
    const aliceToken = await tokenFor('alice');
    const { client } = clientFor(gateway.httpUrl, () => aliceToken);
    const bob = clientFor(gateway.httpUrl, async () => tokenFor('bob')).client;

    const viewer = await client.urql.query(ViewerQuery, {}).toPromise();
    expect(viewer.data?.viewer.id).toBe('alice');
    const session = await client.urql.mutation(StartChatSessionMutation, {}).toPromise();
    const sessionId = session.data?.startChatSession.id as string;

    const prices = collect<{ data?: { priceUpdated: { price: { amount: string } } } }>(client.urql.subscription(PriceUpdatedSubscription, { hotelId: 'hotel-1' }));
    const messages = collect<{ data?: { newMessage: { text: string } } }>(client.urql.subscription(NewMessageSubscription, { conversationId: 'conv-1' }));
    const typing = collect<{ data?: { userTyping: { userId: string; state: string } } }>(client.urql.subscription(UserTypingSubscription, { conversationId: 'conv-1' }));
    const bookings = collect<{ data?: { bookingUpdated: { status: string; totalPrice?: { amount: string } | null } } }>(
      client.urql.subscription(BookingUpdatedSubscription, { bookingId: 'booking-1' }),
    );
    const notifications = collect<{ data?: { notificationCreated: { title: string } } }>(client.urql.subscription(NotificationCreatedSubscription, {}));
    const chat = collect<{ data?: { chatResponse: { status: string } } }>(client.urql.subscription(ChatResponseSubscription, { sessionId }));
    for (const topic of [
      topics.hotelPrices('hotel-1'),
      topics.conversationMessages('conv-1'),
      topics.conversationTyping('conv-1'),
      topics.userBookings('alice'),
      topics.userNotifications('alice'),
      topics.chatSession(sessionId),
    ]) {
      await gateway.waitForSubscribers(topic);
    }

    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1', 9_900));
    await gateway.publish(PUBLISH_MESSAGE, { input: { messageId: 'm1', conversationId: 'conv-1', senderId: 'bob', text: 'Hi Alice' } });
    const typed = await bob.urql.mutation(SetTypingMutation, { conversationId: 'conv-1', state: 'STARTED' }).toPromise();
    expect(typed.data?.setTyping).toBe(true);
    await gateway.publish(PUBLISH_BOOKING, bookingInput('booking-1', 'alice', 'hank', 'CONFIRMED'));
    await gateway.publish(PUBLISH_NOTIFICATION, { input: { notificationId: 'n1', userId: 'alice', kind: 'SYSTEM', title: 'Welcome' } });
    const sent = await client.urql.mutation(SendChatMessageMutation, { sessionId, text: 'Hello' }).toPromise();
    expect(sent.data?.sendChatMessage.sessionId).toBe(sessionId);

    await waitUntil(
      () =>
        prices.values.length > 0 &&
        messages.values.length > 0 &&
        typing.values.length > 0 &&
        bookings.values.length > 0 &&
        notifications.values.length > 0 &&
        chat.values.some((result) => result.data?.chatResponse.status === 'DONE'),
      'every subscription to deliver',
    );
    expect(prices.values[0]?.data?.priceUpdated.price.amount).toBe('99.00');
    expect(messages.values[0]?.data?.newMessage.text).toBe('Hi Alice');
    expect(typing.values[0]?.data?.userTyping).toMatchObject({ userId: 'bob', state: 'STARTED' });
    expect(bookings.values[0]?.data?.bookingUpdated).toMatchObject({ status: 'CONFIRMED', totalPrice: { amount: '450.00' } });
    expect(notifications.values[0]?.data?.notificationCreated.title).toBe('Welcome');
    expect(chat.values[0]?.data?.chatResponse.status).toBe('TYPING');
  });

  it('reconnects after the gateway restarts, resubscribes, and goes live → reconnecting → offline → live', async () => {
    const gateway = await restartableGateway();
    const { client, statuses } = clientFor(gateway.url, async () => tokenFor('alice'));
    const prices = collect<{ data?: { priceUpdated: { price: { amountMinor: number } } } }>(
      client.urql.subscription(PriceUpdatedSubscription, { hotelId: 'hotel-r' }),
    );
    await waitUntil(() => gateway.app().services.bus.subscriberCount(topics.hotelPrices('hotel-r')) === 1, 'subscribed');
    expect(client.connection.get()).toMatchObject({ status: 'live', transport: 'websocket' });

    await gateway.stop();
    await waitUntil(() => client.connection.get().status === 'offline', 'offline while the gateway is down');
    await gateway.start();
    await waitUntil(() => client.connection.get().status === 'live', 'live again', 10_000);
    await waitUntil(() => gateway.app().services.bus.subscriberCount(topics.hotelPrices('hotel-r')) === 1, 'resubscribed');
    await publishAsService(gateway.url, PUBLISH_PRICE, priceInput('hotel-r', 4_200));
    await waitUntil(() => prices.values.length === 1, 'the event after the restart');
    expect(prices.values[0]?.data?.priceUpdated.price.amountMinor).toBe(4_200);
    expect(statuses).toEqual(['connecting/websocket', 'live/websocket', 'reconnecting/websocket', 'offline/websocket', 'live/websocket']);
  });

  it('asks the token provider again on reconnect and uses the refreshed token', async () => {
    // No expiry warning: the socket is closed with 4403 at expiry and the client reconnects.
    const gateway = await startGateway({ TOKEN_EXPIRY_WARNING_SECONDS: '0' });
    const issued: string[] = [];
    const { client } = clientFor(gateway.httpUrl, async () => {
      // The first token expires in 2 s; later ones last an hour.
      const token = await tokenFor('alice', ['user'], { expiresInSeconds: issued.length === 0 ? 2 : 3600 });
      issued.push(token);
      return token;
    });
    const prices = collect<{ data?: { priceUpdated: { id: string } } }>(client.urql.subscription(PriceUpdatedSubscription, { hotelId: 'hotel-t' }));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-t'));
    const tokensBeforeExpiry = issued.length;

    // The gateway closes the socket with 4403 at expiry; the client reconnects with a new token.
    await waitUntil(() => issued.length > tokensBeforeExpiry && client.connection.get().status === 'live', 'a reconnect with a fresh token', 8_000);
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-t'));
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-t'));
    await waitUntil(() => prices.values.length === 1, 'the event on the refreshed connection');
    const viewer = await client.urql.query(ViewerQuery, {}, { requestPolicy: 'network-only' }).toPromise();
    expect(Date.parse(viewer.data?.viewer.tokenExpiresAt as string) - Date.now()).toBeGreaterThan(60_000);
  });

  it('hands the connection a fresh token in place when warned that the token expires (by hash under TRUSTED_DOCUMENTS), on every warning, never reconnecting', async () => {
    const gateway = await startGateway({ TOKEN_EXPIRY_WARNING_SECONDS: '2', TRUSTED_DOCUMENTS: TRUSTED_MANIFEST });
    const issued: string[] = [];
    const { client, statuses } = clientFor(gateway.httpUrl, async () => {
      // Two short-lived tokens, then a long one: the second warning comes from the refreshed token.
      const token = await tokenFor('alice', ['user'], { expiresInSeconds: issued.length < 2 ? 4 : 3600 });
      issued.push(token);
      return token;
    });
    // Acknowledged first, so the subscription goes by hash from the start (the ack asks for hashes).
    await waitUntil(() => client.connection.get().status === 'live', 'live');
    const prices = collect<{ data?: { priceUpdated: { price: { amountMinor: number } } } }>(client.urql.subscription(PriceUpdatedSubscription, { hotelId: 'hotel-r' }));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-r'));
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-r', 1));
    await waitUntil(() => prices.values.length === 1, 'the first event');
    const [original] = gateway.app.webSockets.connections();

    await waitUntil(() => issued.length === 3, 'two refreshes', 8_000);
    // Past both short tokens' expiry: still the first connection, never a reconnect.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(gateway.app.webSockets.connections().map((connection) => connection.connectionId)).toEqual([original?.connectionId]);
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-r', 2));
    await waitUntil(() => prices.values.length === 2, 'the event after the refreshes');
    expect(prices.values.map((value) => value.data?.priceUpdated.price.amountMinor)).toEqual([1, 2]);
    expect(statuses).toEqual(['connecting/websocket', 'live/websocket']);
    // Both refreshes went by hash: the gateway refused nothing.
    const refused = await gateway.app.metrics.registry.getSingleMetric('tidings_trusted_document_refusals_total')?.get();
    expect(refused?.values.reduce((sum, value) => sum + value.value, 0) ?? 0).toBe(0);
  }, 20_000);

  it('moves its subscriptions to a fresh connection when the gateway refuses the fresh token in place (other roles), without showing a reconnect', async () => {
    const gateway = await startGateway({ TOKEN_EXPIRY_WARNING_SECONDS: '2' });
    const issued: string[] = [];
    const { client, statuses } = clientFor(gateway.httpUrl, async () => {
      // The fresh token has other roles: refused in place (roles_changed), so the client hands over.
      const token = await tokenFor('alice', issued.length === 0 ? ['user'] : ['user', 'host'], { expiresInSeconds: issued.length === 0 ? 4 : 3600 });
      issued.push(token);
      return token;
    });
    const prices = collect<{ data?: { priceUpdated: { price: { amountMinor: number } } } }>(client.urql.subscription(PriceUpdatedSubscription, { hotelId: 'hotel-w' }));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-w'));
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-w', 1));
    await waitUntil(() => prices.values.length === 1, 'the first event');
    const [original] = gateway.app.webSockets.connections();

    // About two seconds before expiry the gateway warns; its refusal of the fresh token in place
    // makes the client connect again with it, move the subscription, and let the old connection go.
    const onlyReplacement = () => {
      const connections = gateway.app.webSockets.connections();
      return connections.length === 1 && connections[0]?.connectionId !== original?.connectionId;
    };
    // Two fresh tokens: the one refused in place, and the one the new connection asks for.
    await waitUntil(() => issued.length === 3 && onlyReplacement(), 'the replacement connection', 6_000);
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.hotelPrices('hotel-w')) === 1, 'the moved subscription');
    const [replacement] = gateway.app.webSockets.connections();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    // Past the first token's expiry: still the same, fresh connection, never a reconnect.
    expect(gateway.app.webSockets.connections().map((connection) => connection.connectionId)).toEqual([replacement?.connectionId]);
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-w', 2));
    await waitUntil(() => prices.values.length === 2, 'the event on the fresh connection');
    expect(prices.values.map((value) => value.data?.priceUpdated.price.amountMinor)).toEqual([1, 2]);
    expect(statuses).toEqual(['connecting/websocket', 'live/websocket']);
  });

  it('falls back to SSE when WebSockets are blocked but HTTP works, and still delivers', async () => {
    const gateway = await startGateway();
    const proxy = await startHttpOnlyProxy(gateway.httpUrl);
    const { client, statuses } = clientFor(proxy.url, async () => tokenFor('alice'));
    const prices = collect<{ data?: { priceUpdated: { hotelId: string } } }>(client.urql.subscription(PriceUpdatedSubscription, { hotelId: 'hotel-sse' }));
    await waitUntil(() => client.connection.get().transport === 'sse', 'the SSE fallback', 8_000);
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-sse'));
    expect(proxy.refusedUpgrades()).toBeGreaterThanOrEqual(2);
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-sse'));
    await waitUntil(() => prices.values.length === 1, 'the event over SSE');
    expect(prices.values[0]?.data?.priceUpdated.hotelId).toBe('hotel-sse');
    expect(client.connection.get()).toMatchObject({ status: 'live', transport: 'sse' });
    expect(statuses.at(-1)).toBe('live/sse');
  });

  it('stops for good when the token provider says the user logged out', async () => {
    const gateway = await startGateway();
    let loggedIn = true;
    let calls = 0;
    const { client } = clientFor(gateway.httpUrl, async () => {
      calls += 1;
      if (!loggedIn) throw new LoggedOutError();
      return tokenFor('alice');
    });
    await waitUntil(() => client.connection.get().status === 'live', 'live');
    loggedIn = false;
    client.reconnect();
    await waitUntil(() => client.connection.get().reason === 'logged-out', 'offline: logged out');
    const callsAfterLogout = calls;
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(calls).toBe(callsAfterLogout);
    expect(client.connection.get().status).toBe('offline');
  });
});
