import { describe, expect, it } from 'vitest';
import { MessageType, parseMessage, stringifyMessage } from 'graphql-ws';
import WebSocket from 'ws';
import { topics } from '../src/events/topics.js';
import { nextFrame } from '../src/transport/graphql-transport-ws.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { counterValue } from './support/metrics.js';
import { ADD_MEMBERS, NEW_MESSAGE, PRICE_UPDATED, priceInput, PUBLISH_PRICE, REMOVE_MEMBERS, VIEWER } from './support/operations.js';
import { openRawSocket, type RawSocket } from './support/raw-socket.js';
import { waitUntil } from './support/wait.js';

/**
 * Conformance of the WebSocket endpoint to the graphql-transport-ws protocol
 * (node_modules/graphql-ws/PROTOCOL.md), frame by frame, and to graphql-ws' server where the
 * protocol leaves the answer open (close reasons, pong payloads). What other suites already pin
 * (4408, 4429, 4401, 4409, 4403, 4406, 1007, 1009, malformed JSON, unknown type, keep-alive,
 * unknown operation names, shutdown's 1001) is not repeated here.
 */

type Frame = Record<string, unknown>;

/** graphql-ws' reason for every message that fails validation (4400). */
const INVALID_MESSAGE = { code: 4400, reason: 'Invalid message received' } as const;

/** A price event as PRICE_UPDATED selects it. */
const priceEvent = (hotelId: string, amountMinor: number) => ({
  id: expect.stringMatching(/^[0-9a-f-]{36}$/),
  occurredAt: expect.any(String),
  hotelId,
  roomType: 'DOUBLE',
  price: { amountMinor, currency: 'EUR', amount: (amountMinor / 100).toFixed(2) },
  previousPrice: { amount: '139.00', currency: 'EUR' },
});
const priceNext = (id: string, hotelId: string, amountMinor: number) => ({ id, type: 'next', payload: { data: { priceUpdated: priceEvent(hotelId, amountMinor) } } });
const subscribePrices = (id: string, hotelId: string) => ({ id, type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId } } });

const framesFor = (raw: RawSocket, id: string) => raw.messages.filter((message) => message['id'] === id);
/** The connection_ack of a gateway without TRUSTED_DOCUMENTS. */
const ACK = { type: 'connection_ack', payload: { refreshSession: true } };

/** Everything the server sent after connection_ack. */
const afterAck = (raw: RawSocket) => raw.messages.slice(raw.messages.findIndex((message) => message['type'] === 'connection_ack') + 1);

let probes = 0;
/**
 * A ping with a unique payload, answered by its pong: the server has handled every message sent
 * before it (messages of one socket are handled in order) and the socket is still open.
 */
async function roundTrip(raw: RawSocket): Promise<void> {
  const payload = { probe: ++probes };
  raw.send({ type: 'ping', payload });
  await raw.waitForMessage((message) => message['type'] === 'pong' && JSON.stringify(message['payload']) === JSON.stringify(payload));
  expect(raw.socket.readyState).toBe(WebSocket.OPEN);
}

/** Drops the round trips' pongs, leaving what the test is about. */
const withoutProbes = (frames: Frame[]) =>
  frames.filter((frame) => !(frame['type'] === 'pong' && typeof (frame['payload'] as { probe?: unknown } | undefined)?.probe === 'number'));

async function connected(gateway: TestGateway, user = 'alice', roles: Parameters<typeof tokenFor>[1] = ['user'], protocol?: string | string[]) {
  const raw = await openRawSocket(gateway.wsUrl, protocol);
  await raw.init(await tokenFor(user, roles));
  return raw;
}

async function expectClose(raw: RawSocket, expected: { code: number; reason: string }) {
  expect(await raw.waitForClose(3_000)).toEqual(expected);
}

describe('graphql-transport-ws: connection', () => {
  it('answers connection_init with a connection_ack whose payload says what the server offers (refreshSession)', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    expect(raw.messages).toEqual([ACK]);
    await roundTrip(raw);
  });

  it.each([
    ['without a payload', { type: 'connection_init' }],
    ['with a null payload', { type: 'connection_init', payload: null }],
    ['with an empty payload', { type: 'connection_init', payload: {} }],
  ])('accepts connection_init %s (anonymous access allowed)', async (_case, init) => {
    const gateway = await startGateway({ ALLOW_ANONYMOUS: 'true' });
    const raw = await openRawSocket(gateway.wsUrl);
    raw.send(init);
    await raw.waitForMessage((message) => message['type'] === 'connection_ack');
    expect(raw.messages).toEqual([ACK]);
    raw.send({ id: 'q', type: 'subscribe', payload: { query: 'query { viewer { anonymous } }' } });
    await raw.waitForMessage((message) => message['id'] === 'q' && message['type'] === 'complete');
    expect(framesFor(raw, 'q')).toEqual([
      { id: 'q', type: 'next', payload: { data: { viewer: { anonymous: true } } } },
      { id: 'q', type: 'complete' },
    ]);
  });

  it('selects graphql-transport-ws from a list of subprotocols that contains it among others', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway, 'alice', ['user'], ['graphql-ws', 'graphql-transport-ws', 'x-tidings-unknown']);
    expect(raw.socket.protocol).toBe('graphql-transport-ws');
    expect(raw.messages).toEqual([ACK]);
  });

  it('completes the close handshake when the client closes with 1000, ending its subscriptions silently', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send(subscribePrices('p', 'hotel-close'));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-close'));
    raw.socket.close(1000, 'bye');
    expect((await raw.waitForClose()).code).toBe(1000);
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.hotelPrices('hotel-close')) === 0, 'the subscription to end');
    await waitUntil(async () => (await counterValue(gateway.app, 'websocketCloses', { code: '1000' })) === 1, 'a counted 1000 close');
    expect(afterAck(raw)).toEqual([]);
  });
});

describe('graphql-transport-ws: ping and pong', () => {
  it('answers a ping before connection_init with a pong without payload, and still accepts the init', async () => {
    const gateway = await startGateway();
    const raw = await openRawSocket(gateway.wsUrl);
    raw.send({ type: 'ping' });
    await raw.waitForMessage((message) => message['type'] === 'pong');
    expect(raw.messages).toEqual([{ type: 'pong' }]);
    await raw.init(await tokenFor('alice'));
    expect(raw.messages).toEqual([{ type: 'pong' }, ACK]);
  });

  it('answers a ping with a payload before connection_init with a pong echoing it', async () => {
    const gateway = await startGateway();
    const raw = await openRawSocket(gateway.wsUrl);
    raw.send({ type: 'ping', payload: { sentAt: 1234, nested: { a: [1, 'b'] } } });
    await raw.waitForMessage((message) => message['type'] === 'pong');
    expect(raw.messages).toEqual([{ type: 'pong', payload: { sentAt: 1234, nested: { a: [1, 'b'] } } }]);
  });

  it('answers pings after connection_ack: no payload, null payload and a payload', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send({ type: 'ping' });
    raw.send({ type: 'ping', payload: null });
    raw.send({ type: 'ping', payload: { n: 3 } });
    await waitUntil(() => afterAck(raw).length === 3, 'three pongs');
    expect(afterAck(raw)).toEqual([{ type: 'pong' }, { type: 'pong' }, { type: 'pong', payload: { n: 3 } }]);
  });

  it('ignores a client pong (unsolicited heartbeat) before and after connection_init: no reply, socket open', async () => {
    const gateway = await startGateway();
    const raw = await openRawSocket(gateway.wsUrl);
    raw.send({ type: 'pong' });
    raw.send({ type: 'pong', payload: { beat: 1 } });
    await roundTrip(raw);
    expect(withoutProbes(raw.messages)).toEqual([]);
    await raw.init(await tokenFor('alice'));
    raw.send({ type: 'pong' });
    raw.send({ type: 'pong', payload: null });
    raw.send({ type: 'pong', payload: { beat: 2 } });
    await roundTrip(raw);
    expect(withoutProbes(raw.messages)).toEqual([ACK]);
  });
});

describe('graphql-transport-ws: invalid messages close with 4400', () => {
  const viewerPayload = { query: VIEWER };
  const afterAckCases: Array<[string, string]> = [
    ['JSON that is a string', JSON.stringify('subscribe')],
    ['JSON that is an array', JSON.stringify([{ type: 'ping' }])],
    ['JSON null', 'null'],
    ['JSON that is a number', '42'],
    ['an object without type', JSON.stringify({ id: '1', payload: viewerPayload })],
    ['a non-string type', JSON.stringify({ type: 7 })],
    ['a subscribe without id', JSON.stringify({ type: 'subscribe', payload: viewerPayload })],
    ['a subscribe with a numeric id', JSON.stringify({ id: 1, type: 'subscribe', payload: viewerPayload })],
    ['a subscribe with an empty id', JSON.stringify({ id: '', type: 'subscribe', payload: viewerPayload })],
    ['a subscribe without payload', JSON.stringify({ id: '1', type: 'subscribe' })],
    ['a subscribe with a string payload', JSON.stringify({ id: '1', type: 'subscribe', payload: VIEWER })],
    ['a subscribe with a non-string query', JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 42 } })],
    ['a subscribe with a null query', JSON.stringify({ id: '1', type: 'subscribe', payload: { query: null } })],
    ['a subscribe with a non-string operationName', JSON.stringify({ id: '1', type: 'subscribe', payload: { query: VIEWER, operationName: 1 } })],
    ['a subscribe with a boolean for variables', JSON.stringify({ id: '1', type: 'subscribe', payload: { query: VIEWER, variables: true } })],
    ['a subscribe with an array for extensions', JSON.stringify({ id: '1', type: 'subscribe', payload: { query: VIEWER, extensions: [] } })],
    ['a subscribe with a string for extensions', JSON.stringify({ id: '1', type: 'subscribe', payload: { query: VIEWER, extensions: 'x' } })],
    ['a complete without id', JSON.stringify({ type: 'complete' })],
    ['a complete with a numeric id', JSON.stringify({ id: 5, type: 'complete' })],
    ['a complete with an empty id', JSON.stringify({ id: '', type: 'complete' })],
    ['a ping with a string payload', JSON.stringify({ type: 'ping', payload: 'hello' })],
    ['a pong with an array payload', JSON.stringify({ type: 'pong', payload: [1] })],
    ['a second connection_init with an array payload', JSON.stringify({ type: 'connection_init', payload: [] })],
  ];

  it.each(afterAckCases)('closes with 4400 "Invalid message received" on %s after connection_ack, sending nothing else', async (_case, text) => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.sendRaw(text);
    await expectClose(raw, INVALID_MESSAGE);
    expect(afterAck(raw)).toEqual([]);
  });

  it.each([
    ['an array payload', { type: 'connection_init', payload: [] }],
    ['a numeric payload', { type: 'connection_init', payload: 1 }],
  ])('closes with 4400 "Invalid message received" on a connection_init with %s', async (_case, message) => {
    const gateway = await startGateway({ ALLOW_ANONYMOUS: 'true' });
    const raw = await openRawSocket(gateway.wsUrl);
    raw.send(message);
    await expectClose(raw, INVALID_MESSAGE);
    expect(raw.messages).toEqual([]);
  });

  // PROTOCOL.md: next, error and connection_ack are Server -> Client; "receiving a message of a
  // type or format which is not specified in this document" (for this direction) is 4400.
  it.each([
    ['connection_ack', { type: 'connection_ack' }],
    ['next', { id: 'n', type: 'next', payload: { data: { viewer: { id: 'mallory' } } } }],
    ['error', { id: 'e', type: 'error', payload: [{ message: 'forged' }] }],
  ])('closes with 4400 on a server-only %s sent by the client after connection_ack', async (_type, message) => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send(message);
    await expectClose(raw, INVALID_MESSAGE);
    expect(afterAck(raw)).toEqual([]);
  });

  it('closes with 4400 on a server-only connection_ack sent by the client instead of connection_init', async () => {
    const gateway = await startGateway();
    const raw = await openRawSocket(gateway.wsUrl);
    raw.send({ type: 'connection_ack' });
    await expectClose(raw, INVALID_MESSAGE);
    expect(raw.messages).toEqual([]);
  });
});

describe('graphql-transport-ws: messages before connection_init', () => {
  it('ignores a complete before connection_init (an unknown id), then acknowledges the init', async () => {
    const gateway = await startGateway();
    const raw = await openRawSocket(gateway.wsUrl);
    raw.send({ id: 'early', type: 'complete' });
    await roundTrip(raw);
    expect(withoutProbes(raw.messages)).toEqual([]);
    await raw.init(await tokenFor('alice'));
    expect(withoutProbes(raw.messages)).toEqual([ACK]);
  });
});

describe('graphql-transport-ws: operations', () => {
  it('accepts a subscribe whose optional fields are null: next, then complete', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send({ id: 'n', type: 'subscribe', payload: { query: 'query { viewer { id } }', operationName: null, variables: null, extensions: null } });
    await raw.waitForMessage((message) => message['id'] === 'n' && message['type'] === 'complete');
    expect(afterAck(raw)).toEqual([
      { id: 'n', type: 'next', payload: { data: { viewer: { id: 'alice' } } } },
      { id: 'n', type: 'complete' },
    ]);
  });

  it('answers a query with exactly one next, then complete', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send({ id: 'q1', type: 'subscribe', payload: { query: VIEWER, operationName: 'Viewer', extensions: { client: 'protocol-suite' } } });
    await raw.waitForMessage((message) => message['id'] === 'q1' && message['type'] === 'complete');
    await roundTrip(raw);
    expect(withoutProbes(afterAck(raw))).toEqual([
      { id: 'q1', type: 'next', payload: { data: { viewer: { id: 'alice', anonymous: false, roles: ['USER'], tokenExpiresAt: expect.any(String) } } } },
      { id: 'q1', type: 'complete' },
    ]);
  });

  it('answers a mutation with next, then complete, and its event reaches a subscription on the same socket', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway, 'pricing-service', ['service']);
    raw.send(subscribePrices('watch', 'hotel-m'));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-m'));
    raw.send({ id: 'mut', type: 'subscribe', payload: { query: PUBLISH_PRICE, variables: priceInput('hotel-m', 15_000) } });
    await raw.waitForMessage((message) => message['id'] === 'mut' && message['type'] === 'complete');
    await raw.waitForMessage((message) => message['id'] === 'watch');
    expect(framesFor(raw, 'mut')).toEqual([
      { id: 'mut', type: 'next', payload: { data: { publishPrice: { eventId: expect.any(String), type: 'priceUpdated', occurredAt: expect.any(String) } } } },
      { id: 'mut', type: 'complete' },
    ]);
    expect(framesFor(raw, 'watch')).toEqual([priceNext('watch', 'hotel-m', 15_000)]);
  });

  it('answers a validation error with a single error message (GraphQL errors with codes), no complete, and the id is free at once', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send({ id: 'v', type: 'subscribe', payload: { query: 'subscription { nope }' } });
    await raw.waitForMessage((message) => message['id'] === 'v');
    raw.send({ id: 'v', type: 'subscribe', payload: { query: 'query { viewer { id } }' } });
    await raw.waitForMessage((message) => message['id'] === 'v' && message['type'] === 'complete');
    await roundTrip(raw);
    expect(withoutProbes(afterAck(raw))).toEqual([
      {
        id: 'v',
        type: 'error',
        payload: [
          {
            message: 'Cannot query field "nope" on type "Subscription".',
            locations: [{ line: 1, column: 16 }],
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
          },
        ],
      },
      { id: 'v', type: 'next', payload: { data: { viewer: { id: 'alice' } } } },
      { id: 'v', type: 'complete' },
    ]);
  });

  it('answers a syntax error with a single error message carrying GRAPHQL_PARSE_FAILED, and no complete', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send({ id: 's', type: 'subscribe', payload: { query: 'subscription {' } });
    await raw.waitForMessage((message) => message['id'] === 's');
    await roundTrip(raw);
    expect(withoutProbes(afterAck(raw))).toEqual([
      {
        id: 's',
        type: 'error',
        payload: [{ message: expect.stringMatching(/^Syntax Error: /), locations: [{ line: 1, column: 15 }], extensions: { code: 'GRAPHQL_PARSE_FAILED' } }],
      },
    ]);
  });

  it('closes with 4409 "Subscriber for <id> already exists" when a query reuses the id of a running subscription', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send(subscribePrices('busy', 'hotel-busy'));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-busy'));
    raw.send({ id: 'busy', type: 'subscribe', payload: { query: 'query { viewer { id } }' } });
    await expectClose(raw, { code: 4409, reason: 'Subscriber for busy already exists' });
    expect(afterAck(raw)).toEqual([]);
  });

  it('ignores a complete for an unknown id: no reply, socket open', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send({ id: 'never-subscribed', type: 'complete' });
    await roundTrip(raw);
    expect(withoutProbes(afterAck(raw))).toEqual([]);
  });

  it('ignores a complete for an operation the server already completed or errored', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send({ id: 'done', type: 'subscribe', payload: { query: 'query { viewer { id } }' } });
    raw.send({ id: 'failed', type: 'subscribe', payload: { query: 'query { nope }' } });
    await raw.waitForMessage((message) => message['id'] === 'done' && message['type'] === 'complete');
    await raw.waitForMessage((message) => message['id'] === 'failed');
    raw.send({ id: 'done', type: 'complete' });
    raw.send({ id: 'failed', type: 'complete' });
    raw.send({ id: 'done', type: 'complete' });
    await roundTrip(raw);
    expect(withoutProbes(afterAck(raw)).map((frame) => `${frame['id']}:${frame['type']}`).sort()).toEqual(['done:complete', 'done:next', 'failed:error']);
  });

  it('does not run a query completed by the client before it resolved', async () => {
    const gateway = await startGateway();
    const raw = await connected(gateway);
    raw.send({ id: 'cancelled', type: 'subscribe', payload: { query: 'query { viewer { id } }' } });
    raw.send({ id: 'cancelled', type: 'complete' });
    raw.send({ id: 'after', type: 'subscribe', payload: { query: 'query { viewer { id } }' } });
    await raw.waitForMessage((message) => message['id'] === 'after' && message['type'] === 'complete');
    await roundTrip(raw);
    expect(framesFor(raw, 'cancelled')).toEqual([]);
    expect(framesFor(raw, 'after')).toEqual([
      { id: 'after', type: 'next', payload: { data: { viewer: { id: 'alice' } } } },
      { id: 'after', type: 'complete' },
    ]);
  });
});

describe.each(BACKENDS)('graphql-transport-ws: subscriptions with the %s pub/sub', (backend) => {
  const start = async () => startGateway(await backendEnv(backend));

  it('stops next messages after the client completes a subscription, sending no complete for it, and the id can be reused', async () => {
    const gateway = await start();
    const raw = await connected(gateway);
    // The marker shares the topic (and the shared delivery): what it receives, `a` would have.
    raw.send(subscribePrices('a', 'hotel-c'));
    raw.send(subscribePrices('marker', 'hotel-c'));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-c'));
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-c', 100));
    await raw.waitForMessage((message) => message['id'] === 'a');
    await raw.waitForMessage((message) => message['id'] === 'marker');

    raw.send({ id: 'a', type: 'complete' });
    await roundTrip(raw);
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-c', 200));
    await waitUntil(() => framesFor(raw, 'marker').length === 2, 'the marker event');
    expect(framesFor(raw, 'a')).toEqual([priceNext('a', 'hotel-c', 100)]);

    // Reused for another hotel: only that hotel's events, none of the old one's.
    raw.send(subscribePrices('a', 'hotel-d'));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-d'));
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-c', 300));
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-d', 400));
    await waitUntil(() => framesFor(raw, 'a').length === 2, 'the reused id\'s event');
    await waitUntil(() => framesFor(raw, 'marker').length === 3, 'the marker event');
    expect(framesFor(raw, 'a')).toEqual([priceNext('a', 'hotel-c', 100), priceNext('a', 'hotel-d', 400)]);
    expect(framesFor(raw, 'marker')).toEqual([priceNext('marker', 'hotel-c', 100), priceNext('marker', 'hotel-c', 200), priceNext('marker', 'hotel-c', 300)]);
  });

  it('lets a completed subscription id be reused for the same subscription at once', async () => {
    const gateway = await start();
    const raw = await connected(gateway);
    raw.send(subscribePrices('again', 'hotel-r'));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-r'));
    raw.send({ id: 'again', type: 'complete' });
    raw.send(subscribePrices('again', 'hotel-r'));
    await roundTrip(raw);
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-r'));
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-r', 700));
    await raw.waitForMessage((message) => message['id'] === 'again');
    await roundTrip(raw);
    expect(framesFor(raw, 'again')).toEqual([priceNext('again', 'hotel-r', 700)]);
  });

  it('never starts a subscription completed by the client while it was being set up', async () => {
    const gateway = await start();
    const raw = await connected(gateway);
    raw.send(subscribePrices('marker', 'hotel-s'));
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-s'));
    // Same message batch: the complete arrives while the subscribe is still being decided.
    raw.send(subscribePrices('early', 'hotel-s'));
    raw.send({ id: 'early', type: 'complete' });
    raw.send(subscribePrices('late', 'hotel-s'));
    await roundTrip(raw);
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-s', 500));
    await waitUntil(() => framesFor(raw, 'marker').length === 1 && framesFor(raw, 'late').length === 1, 'the event on marker and late');
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-s', 600));
    await waitUntil(() => framesFor(raw, 'marker').length === 2 && framesFor(raw, 'late').length === 2, 'the second event');
    expect(framesFor(raw, 'early')).toEqual([]);
    expect(framesFor(raw, 'late')).toEqual([priceNext('late', 'hotel-s', 500), priceNext('late', 'hotel-s', 600)]);
    // Nothing of it lingers: the id is free (no 4409), and serves exactly one subscription.
    raw.send(subscribePrices('early', 'hotel-s'));
    await roundTrip(raw);
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-s', 700));
    await waitUntil(() => framesFor(raw, 'marker').length === 3 && framesFor(raw, 'early').length >= 1, 'the third event');
    await roundTrip(raw);
    expect(framesFor(raw, 'early')).toEqual([priceNext('early', 'hotel-s', 700)]);
  });

  it('multiplexes operations with distinct ids on one socket: each gets only its own events', async () => {
    const gateway = await start();
    const raw = await connected(gateway);
    const hotels = ['hotel-x1', 'hotel-x2', 'hotel-x3'];
    hotels.forEach((hotel, index) => raw.send(subscribePrices(`op-${index}`, hotel)));
    for (const hotel of hotels) await gateway.waitForSubscribers(topics.hotelPrices(hotel));
    raw.send({ id: 'op-q', type: 'subscribe', payload: { query: 'query { viewer { id } }' } });
    for (const [index, hotel] of [...hotels, ...hotels].entries()) await gateway.publish(PUBLISH_PRICE, priceInput(hotel, 1_000 + index));
    await waitUntil(() => afterAck(raw).filter((frame) => frame['type'] === 'next').length === 7, 'six events and one query result');
    await roundTrip(raw);
    expect(framesFor(raw, 'op-0')).toEqual([priceNext('op-0', 'hotel-x1', 1_000), priceNext('op-0', 'hotel-x1', 1_003)]);
    expect(framesFor(raw, 'op-1')).toEqual([priceNext('op-1', 'hotel-x2', 1_001), priceNext('op-1', 'hotel-x2', 1_004)]);
    expect(framesFor(raw, 'op-2')).toEqual([priceNext('op-2', 'hotel-x3', 1_002), priceNext('op-2', 'hotel-x3', 1_005)]);
    expect(framesFor(raw, 'op-q')).toEqual([
      { id: 'op-q', type: 'next', payload: { data: { viewer: { id: 'alice' } } } },
      { id: 'op-q', type: 'complete' },
    ]);
    expect(withoutProbes(afterAck(raw))).toHaveLength(8);
  });

  it('sends complete when the server ends a subscription (member removed), and nothing for it after', async () => {
    const gateway = await start();
    await gateway.publish(ADD_MEMBERS, { conversationId: 'conv-p', userIds: ['alice', 'bob'] });
    const raw = await connected(gateway);
    raw.send({ id: 'm', type: 'subscribe', payload: { query: NEW_MESSAGE, variables: { conversationId: 'conv-p' } } });
    await gateway.waitForSubscribers(topics.conversationMessages('conv-p'));
    await gateway.publish(REMOVE_MEMBERS, { conversationId: 'conv-p', userIds: ['alice'] });
    await raw.waitForMessage((message) => message['id'] === 'm' && message['type'] === 'complete');
    await roundTrip(raw);
    const frames = framesFor(raw, 'm');
    // The refusal is a result (next with errors), then the server's complete: not a protocol error.
    expect(frames).toEqual([
      {
        id: 'm',
        type: 'next',
        payload: {
          data: null,
          errors: [
            {
              message: 'You are no longer a member of this conversation',
              locations: [{ line: 3, column: 5 }],
              path: ['newMessage'],
              extensions: { code: 'FORBIDDEN' },
            },
          ],
        },
      },
      { id: 'm', type: 'complete' },
    ]);
    // The id is free again: a new subscribe with it is accepted, not 4409.
    raw.send({ id: 'm', type: 'subscribe', payload: { query: 'query { viewer { id } }' } });
    await waitUntil(() => framesFor(raw, 'm').length === frames.length + 2, 'the reused id\'s answer');
    expect(framesFor(raw, 'm').slice(frames.length)).toEqual([
      { id: 'm', type: 'next', payload: { data: { viewer: { id: 'alice' } } } },
      { id: 'm', type: 'complete' },
    ]);
  });
});

describe('graphql-transport-ws: the server encoding', () => {
  it("builds next frames byte for byte as graphql-ws' stringifyMessage does, and they parse as valid messages", () => {
    for (const id of ['1', 'a"b\\c', 'ü-☃', '\u2028']) {
      const payload = { data: { priceUpdated: { amount: '1.00', note: 'x"y' } }, errors: [{ message: 'm', extensions: { code: 'FORBIDDEN' } }] };
      const frame = nextFrame(JSON.stringify(id), JSON.stringify(payload));
      expect(frame).toBe(stringifyMessage<MessageType.Next>({ id, type: MessageType.Next, payload: payload as never }));
      expect(parseMessage(frame)).toEqual({ id, type: 'next', payload });
    }
  });
});
