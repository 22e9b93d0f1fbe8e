import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { topics } from '../src/events/topics.js';
import { startGateway as startGatewayWith, tokenFor } from './support/gateway.js';
import {
  ADD_MEMBERS,
  BOOKING_UPDATED,
  bookingInput,
  CHAT_RESPONSE,
  NEW_MESSAGE,
  NOTIFICATION_CREATED,
  PRICE_UPDATED,
  PRICE_UPDATED_ADMIN_FIELDS,
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
  VIEWER,
} from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { connectWs, record } from './support/ws-client.js';

describe.each(BACKENDS)('with the %s pub/sub', (backend) => {
  const startGateway = async (env: Record<string, string> = {}) => startGatewayWith({ ...(await backendEnv(backend)), ...env });

  describe('WebSocket (graphql-ws): every subscription delivers what its mutation publishes', () => {
    it('priceUpdated delivers a price change, with money formatted exactly', async () => {
      const gateway = await startGateway();
      const { client } = connectWs(gateway.wsUrl, await tokenFor('alice'));
      const prices = record(client, PRICE_UPDATED, { hotelId: 'hotel-1' });
      await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'));

      await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1', 12_950));
      const [result] = await prices.waitForResults(1);
      expect(result?.errors).toBeUndefined();
      expect(result?.data?.['priceUpdated']).toMatchObject({
        hotelId: 'hotel-1',
        roomType: 'DOUBLE',
        price: { amountMinor: 12_950, currency: 'EUR', amount: '129.50' },
        previousPrice: { amount: '139.00', currency: 'EUR' },
      });
      const event = result?.data?.['priceUpdated'] as { id: string; occurredAt: string };
      expect(event.id).toMatch(/[0-9a-f-]{36}/);
      expect(Number.isNaN(Date.parse(event.occurredAt))).toBe(false);
    });

    it('priceUpdated only reaches subscribers of that hotel', async () => {
      const gateway = await startGateway();
      const { client } = connectWs(gateway.wsUrl, await tokenFor('alice'));
      const hotel1 = record(client, PRICE_UPDATED, { hotelId: 'hotel-1' });
      const hotel2 = record(client, PRICE_UPDATED, { hotelId: 'hotel-2' });
      await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'));
      await gateway.waitForSubscribers(topics.hotelPrices('hotel-2'));

      await gateway.publish(PUBLISH_PRICE, priceInput('hotel-2'));
      await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1'));
      await hotel1.waitForResults(1);
      await hotel2.waitForResults(1);
      expect(hotel1.results.map((r) => (r.data?.['priceUpdated'] as { hotelId: string }).hotelId)).toEqual(['hotel-1']);
      expect(hotel2.results.map((r) => (r.data?.['priceUpdated'] as { hotelId: string }).hotelId)).toEqual(['hotel-2']);
    });

    it('newMessage delivers messages to members of the conversation', async () => {
      const gateway = await startGateway();
      await gateway.publish(ADD_MEMBERS, { conversationId: 'conv-1', userIds: ['alice', 'bob'] });
      const { client } = connectWs(gateway.wsUrl, await tokenFor('alice'));
      const messages = record(client, NEW_MESSAGE, { conversationId: 'conv-1' });
      await gateway.waitForSubscribers(topics.conversationMessages('conv-1'));

      await gateway.publish(PUBLISH_MESSAGE, {
        input: { messageId: 'm-1', conversationId: 'conv-1', senderId: 'bob', text: 'Hello Alice' },
      });
      const [result] = await messages.waitForResults(1);
      expect(result?.data?.['newMessage']).toMatchObject({ messageId: 'm-1', conversationId: 'conv-1', senderId: 'bob', text: 'Hello Alice' });
    });

    it("userTyping delivers other members' typing, never the viewer's own", async () => {
      const gateway = await startGateway();
      await gateway.publish(ADD_MEMBERS, { conversationId: 'conv-1', userIds: ['alice', 'bob'] });
      const aliceToken = await tokenFor('alice');
      const bobToken = await tokenFor('bob');
      const alice = connectWs(gateway.wsUrl, aliceToken);
      const typing = record(alice.client, USER_TYPING, { conversationId: 'conv-1' });
      await gateway.waitForSubscribers(topics.conversationTyping('conv-1'));

      const own = await gateway.http(SET_TYPING, { conversationId: 'conv-1', state: 'STARTED' }, aliceToken);
      expect(own.body.data).toEqual({ setTyping: true });
      const bobs = await gateway.http(SET_TYPING, { conversationId: 'conv-1', state: 'STARTED' }, bobToken);
      expect(bobs.body.data).toEqual({ setTyping: true });

      const [result] = await typing.waitForResults(1);
      expect(result?.data?.['userTyping']).toMatchObject({ conversationId: 'conv-1', userId: 'bob', state: 'STARTED' });
      await gateway.http(SET_TYPING, { conversationId: 'conv-1', state: 'STOPPED' }, bobToken);
      await typing.waitForResults(2);
      expect(typing.results.map((r) => (r.data?.['userTyping'] as { userId: string }).userId)).toEqual(['bob', 'bob']);
    });

    it('bookingUpdated delivers to the guest and the host, with and without a bookingId', async () => {
      const gateway = await startGateway();
      const guest = connectWs(gateway.wsUrl, await tokenFor('guest-1'));
      const host = connectWs(gateway.wsUrl, await tokenFor('host-1', ['user', 'host']));
      // The first update registers the parties; subscribe-by-id needs them.
      await gateway.publish(PUBLISH_BOOKING, bookingInput('booking-1', 'guest-1', 'host-1', 'PENDING'));

      const guestOne = record(guest.client, BOOKING_UPDATED, { bookingId: 'booking-1' });
      const hostAll = record(host.client, BOOKING_UPDATED, {});
      await gateway.waitForSubscribers(topics.userBookings('guest-1'));
      await gateway.waitForSubscribers(topics.userBookings('host-1'));

      await gateway.publish(PUBLISH_BOOKING, bookingInput('booking-2', 'guest-1', 'host-1', 'CONFIRMED'));
      await gateway.publish(PUBLISH_BOOKING, bookingInput('booking-1', 'guest-1', 'host-1', 'CONFIRMED'));
      await guestOne.waitForResults(1);
      await hostAll.waitForResults(2);
      expect(guestOne.results).toHaveLength(1);
      expect(guestOne.results[0]?.data?.['bookingUpdated']).toMatchObject({
        bookingId: 'booking-1',
        status: 'CONFIRMED',
        previousStatus: 'PENDING',
        checkIn: '2026-12-24',
        totalPrice: { amount: '450.00', currency: 'EUR' },
      });
      expect(hostAll.results.map((r) => (r.data?.['bookingUpdated'] as { bookingId: string }).bookingId)).toEqual([
        'booking-2',
        'booking-1',
      ]);
    });

    it("notificationCreated delivers the viewer's notifications, and an admin may follow another user's", async () => {
      const gateway = await startGateway();
      const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
      const admin = connectWs(gateway.wsUrl, await tokenFor('root', ['user', 'admin']));
      const own = record(alice.client, NOTIFICATION_CREATED, {});
      const watched = record(admin.client, NOTIFICATION_CREATED, { userId: 'alice' });
      await gateway.waitForSubscribers(topics.userNotifications('alice'), 2);

      await gateway.publish(PUBLISH_NOTIFICATION, {
        input: { notificationId: 'n-1', userId: 'alice', kind: 'BOOKING', title: 'Booking confirmed', link: '/bookings/1' },
      });
      await gateway.publish(PUBLISH_NOTIFICATION, {
        input: { notificationId: 'n-2', userId: 'bob', kind: 'SYSTEM', title: 'For Bob only' },
      });
      await own.waitForResults(1);
      await watched.waitForResults(1);
      expect(own.results[0]?.data?.['notificationCreated']).toMatchObject({
        notificationId: 'n-1',
        userId: 'alice',
        kind: 'BOOKING',
        title: 'Booking confirmed',
        body: '',
        link: '/bookings/1',
      });
      expect(watched.results[0]?.data?.['notificationCreated']).toMatchObject({ notificationId: 'n-1' });
      // Bob's notification reached neither.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(own.results).toHaveLength(1);
    });

    it('chatResponse streams the built-in reply in order: TYPING, CHUNKs, DONE', async () => {
      const gateway = await startGateway();
      const token = await tokenFor('alice');
      const start = await gateway.http(START_CHAT, {}, token);
      const sessionId = (start.body.data?.['startChatSession'] as { id: string }).id;
      const { client } = connectWs(gateway.wsUrl, token);
      const chat = record(client, CHAT_RESPONSE, { sessionId });
      await gateway.waitForSubscribers(topics.chatSession(sessionId));

      const sent = await gateway.http(SEND_CHAT, { sessionId, text: 'Is breakfast included?' }, token);
      expect(sent.body.errors).toBeUndefined();
      await waitUntil(
        () => chat.results.some((r) => (r.data?.['chatResponse'] as { status: string } | undefined)?.status === 'DONE'),
        'the reply to finish',
      );
      const steps = chat.results.map((r) => r.data?.['chatResponse'] as { status: string; sequence: number; text: string | null; replyId: string });
      expect(steps[0]?.status).toBe('TYPING');
      expect(steps.at(-1)?.status).toBe('DONE');
      expect(steps.map((step) => step.sequence)).toEqual(steps.map((_, index) => index));
      expect(new Set(steps.map((step) => step.replyId)).size).toBe(1);
      const chunks = steps.filter((step) => step.status === 'CHUNK');
      expect(chunks.length).toBeGreaterThan(2);
      expect(chunks.map((chunk) => chunk.text).join('')).toContain('You said: "Is breakfast included?"');
    });

    it('runs queries over the socket too (viewer)', async () => {
      const gateway = await startGateway();
      const { client } = connectWs(gateway.wsUrl, await tokenFor('alice', ['user', 'host']));
      const viewer = record(client, VIEWER);
      await viewer.waitForEnd();
      expect(viewer.results[0]?.data?.['viewer']).toMatchObject({ id: 'alice', anonymous: false, roles: ['USER', 'HOST'] });
    });
  });

  describe('WebSocket: authorization', () => {
    it('refuses a non-member with FORBIDDEN and delivers nothing', async () => {
      const gateway = await startGateway();
      await gateway.publish(ADD_MEMBERS, { conversationId: 'conv-1', userIds: ['alice'] });
      const { client } = connectWs(gateway.wsUrl, await tokenFor('mallory'));
      const messages = record(client, NEW_MESSAGE, { conversationId: 'conv-1' });
      const typing = record(client, USER_TYPING, { conversationId: 'conv-1' });
      await messages.waitForEnd();
      await typing.waitForEnd();
      for (const recording of [messages, typing]) {
        expect(recording.results).toHaveLength(1);
        expect(recording.results[0]?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
        expect(recording.results[0]?.data ?? null).toBeNull();
      }
      expect(gateway.app.services.bus.subscriberCount(topics.conversationMessages('conv-1'))).toBe(0);
    });

    it('ends a removed member\'s subscriptions at once with FORBIDDEN', async () => {
      const gateway = await startGateway();
      await gateway.publish(ADD_MEMBERS, { conversationId: 'conv-1', userIds: ['alice', 'bob'] });
      const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
      const bob = connectWs(gateway.wsUrl, await tokenFor('bob'));
      const aliceMessages = record(alice.client, NEW_MESSAGE, { conversationId: 'conv-1' });
      const aliceTyping = record(alice.client, USER_TYPING, { conversationId: 'conv-1' });
      const bobMessages = record(bob.client, NEW_MESSAGE, { conversationId: 'conv-1' });
      await gateway.waitForSubscribers(topics.conversationMessages('conv-1'), 2);
      await gateway.waitForSubscribers(topics.conversationTyping('conv-1'), 1);

      await gateway.publish(REMOVE_MEMBERS, { conversationId: 'conv-1', userIds: ['alice'] });
      await aliceMessages.waitForEnd();
      await aliceTyping.waitForEnd();
      expect(aliceMessages.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
      expect(aliceTyping.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');

      await gateway.publish(PUBLISH_MESSAGE, {
        input: { messageId: 'm-2', conversationId: 'conv-1', senderId: 'bob', text: 'Alice is gone' },
      });
      await bobMessages.waitForResults(1);
      expect(aliceMessages.results.every((r) => r.data?.['newMessage'] === undefined || r.data?.['newMessage'] === null)).toBe(true);
      expect(bobMessages.isComplete()).toBe(false);
    });

    it('refuses bookings of other people, other users\' notifications and other users\' chat sessions', async () => {
      const gateway = await startGateway();
      await gateway.publish(PUBLISH_BOOKING, bookingInput('booking-1', 'guest-1', 'host-1'));
      const aliceToken = await tokenFor('alice');
      const start = await gateway.http(START_CHAT, {}, aliceToken);
      const sessionId = (start.body.data?.['startChatSession'] as { id: string }).id;

      const { client } = connectWs(gateway.wsUrl, await tokenFor('mallory'));
      const cases = [
        record(client, BOOKING_UPDATED, { bookingId: 'booking-1' }),
        record(client, BOOKING_UPDATED, { bookingId: 'unknown-booking' }),
        record(client, NOTIFICATION_CREATED, { userId: 'alice' }),
        record(client, CHAT_RESPONSE, { sessionId }),
      ];
      for (const recording of cases) {
        await recording.waitForEnd();
        expect(recording.results[0]?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
      }
      const sendToOthers = await gateway.http(SEND_CHAT, { sessionId, text: 'hi' }, await tokenFor('mallory'));
      expect(sendToOthers.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    });

    it('hides supplier cost and margin from non-admins while the rest of the event arrives', async () => {
      const gateway = await startGateway();
      const user = connectWs(gateway.wsUrl, await tokenFor('alice'));
      const admin = connectWs(gateway.wsUrl, await tokenFor('root', ['admin']));
      const userPrices = record(user.client, PRICE_UPDATED_ADMIN_FIELDS, { hotelId: 'hotel-1' });
      const adminPrices = record(admin.client, PRICE_UPDATED_ADMIN_FIELDS, { hotelId: 'hotel-1' });
      await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'), 2);

      await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1', 12_900));
      const [userResult] = await userPrices.waitForResults(1);
      const [adminResult] = await adminPrices.waitForResults(1);

      expect(userResult?.data?.['priceUpdated']).toEqual({
        id: expect.any(String),
        hotelId: 'hotel-1',
        price: { amount: '129.00', currency: 'EUR' },
        supplierCost: null,
        margin: null,
      });
      expect(userResult?.errors?.map((error) => [error.path?.join('.'), error.extensions?.['code']])).toEqual([
        ['priceUpdated.supplierCost', 'FORBIDDEN'],
        ['priceUpdated.margin', 'FORBIDDEN'],
      ]);
      expect(adminResult?.errors).toBeUndefined();
      expect(adminResult?.data?.['priceUpdated']).toMatchObject({
        supplierCost: { amount: '100.00', currency: 'EUR' },
        margin: { amount: '29.00', currency: 'EUR' },
      });
    });
  });

  describe('WebSocket: authentication', () => {
    const rawInit = async (url: string, payload: unknown) => {
      const socket = new WebSocket(url, 'graphql-transport-ws');
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      socket.send(JSON.stringify({ type: 'connection_init', payload }));
      return new Promise<{ code: number; reason: string }>((resolve) =>
        socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
      );
    };

    it.each([
      ['garbage', async () => 'not-a-jwt'],
      ['signed with the wrong secret', async () => tokenFor('alice', ['user'], { secret: 'another-secret-0123456789-0123456789-abc' })],
      ['expired', async () => tokenFor('alice', ['user'], { expiresInSeconds: -60 })],
      [
        'alg none',
        async () => {
          const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
          return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: 'admin', roles: ['admin'], exp: 9_999_999_999 })}.`;
        },
      ],
      [
        'tampered',
        async () => {
          const [header, , signature] = (await tokenFor('alice')).split('.');
          const payload = Buffer.from(JSON.stringify({ sub: 'alice', roles: ['admin'], exp: 9_999_999_999 })).toString('base64url');
          return `${header}.${payload}.${signature}`;
        },
      ],
    ])('closes with 4403 for a token that is %s', async (_name, makeToken) => {
      const gateway = await startGateway();
      const closed = await rawInit(gateway.wsUrl, { authorization: `Bearer ${await makeToken()}` });
      expect(closed.code).toBe(4403);
      expect(closed.reason).toMatch(/^Unauthenticated: /);
    });

    it('closes with 4403 without a token unless anonymous access is allowed', async () => {
      const gateway = await startGateway();
      expect((await rawInit(gateway.wsUrl, {})).code).toBe(4403);
      expect((await rawInit(gateway.wsUrl, { authorization: 'Basic abc' })).code).toBe(4403);
    });

    it('lets anonymous connections read public prices, and nothing else, when ALLOW_ANONYMOUS=true', async () => {
      const gateway = await startGateway({ ALLOW_ANONYMOUS: 'true' });
      const { client } = connectWs(gateway.wsUrl);
      const prices = record(client, PRICE_UPDATED_ADMIN_FIELDS, { hotelId: 'hotel-1' });
      const notifications = record(client, NOTIFICATION_CREATED, {});
      const bookings = record(client, BOOKING_UPDATED, {});
      await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'));
      await notifications.waitForEnd();
      await bookings.waitForEnd();
      expect(notifications.results[0]?.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
      expect(bookings.results[0]?.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');

      await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1'));
      const [result] = await prices.waitForResults(1);
      expect(result?.data?.['priceUpdated']).toMatchObject({ hotelId: 'hotel-1', supplierCost: null, margin: null });
    });
  });

  describe('WebSocket: bad operations do not hurt the connection', () => {
    it('answers a syntax error and malformed variables with errors, and other subscriptions keep flowing', async () => {
      const gateway = await startGateway();
      const { client, closes } = connectWs(gateway.wsUrl, await tokenFor('alice'));
      const prices = record(client, PRICE_UPDATED, { hotelId: 'hotel-1' });
      await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'));

      const syntax = record(client, 'subscription { priceUpdated(hotelId: "x") { id ');
      const badVariables = record(client, PRICE_UPDATED, { hotelId: { nested: true } });
      const missingVariable = record(client, PRICE_UPDATED, {});
      const unknownField = record(client, 'subscription { nope }');
      const badId = record(client, PRICE_UPDATED, { hotelId: 'has:colon' });
      for (const recording of [syntax, badVariables, missingVariable, unknownField, badId]) await recording.waitForEnd();

      expect(Array.isArray(syntax.failure.value)).toBe(true);
      expect((syntax.failure.value as Array<{ message: string }>)[0]?.message).toMatch(/Syntax Error/);
      expect((syntax.failure.value as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
      expect((unknownField.failure.value as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code).toBe(
        'GRAPHQL_VALIDATION_FAILED',
      );
      expect(badVariables.results[0]?.errors?.[0]?.message).toMatch(/Variable "\$hotelId"/);
      expect(missingVariable.results[0]?.errors?.[0]?.message).toMatch(/Variable "\$hotelId"/);
      expect((unknownField.failure.value as Array<{ message: string }>)[0]?.message).toMatch(/Cannot query field "nope"/);
      expect(badId.results[0]?.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');

      await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1'));
      await prices.waitForResults(1);
      expect(closes).toHaveLength(0);
    });
  });

  describe('WebSocket: chat with an external assistant (CHAT_RESPONDER=external)', () => {
    it('hands the message to a service subscribed to chatMessageSent, whose replies reach the owner', async () => {
      const gateway = await startGateway({ CHAT_RESPONDER: 'external' });
      const aliceToken = await tokenFor('alice');
      const assistant = connectWs(gateway.wsUrl, await tokenFor('assistant', ['service']));
      const requests = record(
        assistant.client,
        'subscription { chatMessageSent { sessionId userId messageId text } }',
      );
      const alice = connectWs(gateway.wsUrl, aliceToken);
      const start = await gateway.http(START_CHAT, {}, aliceToken);
      const sessionId = (start.body.data?.['startChatSession'] as { id: string }).id;
      const replies = record(alice.client, CHAT_RESPONSE, { sessionId });
      await gateway.waitForSubscribers(topics.chatRequests());
      await gateway.waitForSubscribers(topics.chatSession(sessionId));

      await gateway.http(SEND_CHAT, { sessionId, text: 'Late checkout?' }, aliceToken);
      const [request] = await requests.waitForResults(1);
      expect(request?.data?.['chatMessageSent']).toMatchObject({ sessionId, userId: 'alice', text: 'Late checkout?' });
      for (const [sequence, status, text] of [[0, 'TYPING', null], [1, 'CHUNK', 'Yes, until 1pm.'], [2, 'DONE', null]] as const) {
        await gateway.publish(
          `mutation($input: PublishChatResponseInput!) { publishChatResponse(input: $input) { eventId } }`,
          { input: { sessionId, userId: 'alice', replyId: 'reply-1', sequence, status, text } },
        );
      }
      await replies.waitForResults(3);
      expect(replies.results.map((r) => (r.data?.['chatResponse'] as { status: string }).status)).toEqual(['TYPING', 'CHUNK', 'DONE']);
      // Users may not subscribe to the assistant's feed.
      const snoop = record(alice.client, 'subscription { chatMessageSent { text } }');
      await snoop.waitForEnd();
      expect(snoop.results[0]?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    });
  });

  describe('WebSocket: typing is throttled', () => {
    it('drops a repeated STARTED within the interval but passes STOPPED', async () => {
      const gateway = await startGateway({ TYPING_THROTTLE_MS: '60000' });
      await gateway.publish(ADD_MEMBERS, { conversationId: 'conv-1', userIds: ['alice', 'bob'] });
      const bobToken = await tokenFor('bob');
      const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
      const typing = record(alice.client, USER_TYPING, { conversationId: 'conv-1' });
      await gateway.waitForSubscribers(topics.conversationTyping('conv-1'));
      const answers = [];
      for (const state of ['STARTED', 'STARTED', 'STARTED', 'STOPPED']) {
        answers.push((await gateway.http(SET_TYPING, { conversationId: 'conv-1', state }, bobToken)).body.data?.['setTyping']);
      }
      expect(answers).toEqual([true, false, false, true]);
      await typing.waitForResults(2);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(typing.results.map((r) => (r.data?.['userTyping'] as { state: string }).state)).toEqual(['STARTED', 'STOPPED']);
      const outsider = await gateway.http(SET_TYPING, { conversationId: 'conv-1', state: 'STARTED' }, await tokenFor('mallory'));
      expect(outsider.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    });
  });
});

describe('token expiry ends long-lived connections', () => {
  it('closes a WebSocket with 4403 when its token expires', async () => {
    const gateway = await startGatewayWith();
    const { client, waitForClose } = connectWs(gateway.wsUrl, await tokenFor('alice', ['user'], { expiresInSeconds: 2 }));
    const prices = record(client, PRICE_UPDATED, { hotelId: 'hotel-1' });
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'));
    const closed = await waitForClose();
    expect(closed).toEqual({ code: 4403, reason: 'Unauthenticated: Token has expired' });
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.hotelPrices('hotel-1')) === 0, 'the subscription to end');
    expect(prices.isComplete()).toBe(true);
  });

  it('ends an SSE subscription with UNAUTHENTICATED (expired) when its token expires', async () => {
    const gateway = await startGatewayWith();
    const response = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${await tokenFor('alice', ['user'], { expiresInSeconds: 2 })}`,
      },
      body: JSON.stringify({ query: PRICE_UPDATED, variables: { hotelId: 'hotel-1' } }),
    });
    expect(response.status).toBe(200);
    const body = await response.text(); // resolves only when the server ends the stream
    expect(body).toContain('"code":"UNAUTHENTICATED"');
    expect(body).toContain('"reason":"expired"');
    expect(body).toContain('event: complete');
    expect(gateway.app.services.bus.subscriberCount(topics.hotelPrices('hotel-1'))).toBe(0);
  });
});
