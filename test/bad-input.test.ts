import { createClient as createSseClient } from 'graphql-sse';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { startGateway, tokenFor, type GraphQLBody, type TestGateway } from './support/gateway.js';
import { PRICE_UPDATED, priceInput, PUBLISH_MESSAGE, PUBLISH_PRICE, SEND_CHAT, START_CHAT, VIEWER } from './support/operations.js';
import { openRawSocket, type RawSocket } from './support/raw-socket.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * Bad input on every transport (HTTP, Yoga's SSE / graphql-sse, graphql-ws): the offender gets
 * the documented error (docs/ERRORS.md) and a well-behaved WebSocket subscriber on the same
 * instance receives every event published while the abuse goes on, in order, with no loss.
 *
 * Already covered in protocol-abuse.test.ts (not repeated here): malformed JSON before
 * connection_init, an unknown message type, a string connection_init payload, a subscribe
 * without a query, a binary frame, invalid UTF-8 in a text frame (1007), an oversized frame
 * (1009), and the error *messages* (not codes) for an unknown operation name and a wrong variable
 * type in a subscription. limits.test.ts covers oversized HTTP bodies (413).
 *
 * BAD_REQUEST (malformed request) and OPERATION_RESOLUTION_FAILURE (no such operation) are Yoga's
 * own codes; docs/ERRORS.md does not list them yet.
 */

const BYSTANDER_HOTEL = 'hotel-bystander';
/** 200 KB: far over every field limit, under HTTP_MAX_BODY_BYTES and WS_MAX_PAYLOAD_BYTES (256 KiB). */
const HUGE = 'x'.repeat(200_000);

/** Weird ids: none may become part of a topic name, none may crash anything. */
const WEIRD_IDS: Array<[string, string]> = [
  ['a null byte', 'hotel\u0000-1'],
  ['a right-to-left override', 'hotel-\u202e1'],
  ['an emoji', 'hotel-\u{1f600}'],
  ['a zero-width space', 'hotel\u200b1'],
  ['a lone surrogate', 'hotel-\ud800'],
  ['the topic separator', 'hotel:1'],
  ['an empty string', ''],
  ['129 characters', 'h'.repeat(129)],
  ['200 KB', HUGE],
];

const nest = (depth: number, open: string, close: string, leaf: string) => `${open.repeat(depth)}${leaf}${close.repeat(depth)}`;
/** Deeply nested JSON, written as text: JSON.stringify would overflow our own stack first. */
const DEEP_OBJECT = nest(30_000, '{"a":', '}', '1');
const DEEP_ARRAY = nest(100_000, '[', ']', '"x"');
const deepPriceVariables = (where: 'price' | 'roomType') =>
  where === 'price'
    ? `{"input":{"hotelId":"hotel-deep","roomType":"DOUBLE","price":${DEEP_OBJECT}}}`
    : `{"input":{"hotelId":"hotel-deep","roomType":${DEEP_ARRAY},"price":{"amountMinor":1,"currency":"EUR"}}}`;

const SUBSCRIBE_PRICES = 'subscription Prices($hotelId: ID!) { priceUpdated(hotelId: $hotelId) { id } }';

const code = (error: { extensions?: Record<string, unknown> } | undefined) => error?.extensions?.['code'];
const codesOf = (body: GraphQLBody | undefined) => (body?.errors ?? []).map(code);

/**
 * A gateway with a WebSocket subscriber that must not notice any abuse. Rate limits are lifted so
 * the publishing loop never runs into them.
 */
async function gatewayWithBystander(env: Record<string, string> = {}) {
  const gateway = await startGateway({ RATE_LIMIT_OPERATIONS: '1000000', RATE_LIMIT_CHAT_MESSAGES: '1000000', ...env });
  const bystander = connectWs(gateway.wsUrl, await tokenFor('bystander'));
  const prices = record(bystander.client, PRICE_UPDATED, { hotelId: BYSTANDER_HOTEL });
  await gateway.waitForSubscribers(topics.hotelPrices(BYSTANDER_HOTEL));
  let sent = 0;
  const publishOne = async () => {
    sent += 1;
    await gateway.publish(PUBLISH_PRICE, priceInput(BYSTANDER_HOTEL, sent));
  };
  return {
    gateway,
    /** Runs the abuse while events keep being published to the bystander. */
    async during<T>(abuse: () => Promise<T>): Promise<T> {
      let done = false;
      const publishing = (async () => {
        do {
          await publishOne();
          await sleep(2);
        } while (!done);
      })();
      try {
        return await abuse();
      } finally {
        done = true;
        await publishing;
      }
    },
    /**
     * The bystander got every event so far exactly once and in order (so nothing the offender did
     * was published to it either), is still connected, and the process still serves.
     */
    async expectBystanderUnharmed() {
      // Events on one topic arrive in publish order, so anything extra (a duplicate, an event the
      // offender managed to publish) would show up before this last one.
      await publishOne();
      await prices.waitForResults(sent);
      expect(prices.results.map((result) => (result.data?.['priceUpdated'] as { price: { amountMinor: number } }).price.amountMinor)).toEqual(
        Array.from({ length: sent }, (_, index) => index + 1),
      );
      expect(prices.results.every((result) => result.errors === undefined)).toBe(true);
      expect(prices.isComplete()).toBe(false);
      expect(bystander.closes).toEqual([]);
      const origin = gateway.httpUrl.replace('/graphql', '');
      expect((await fetch(`${origin}/health`)).status).toBe(200);
      expect((await fetch(`${origin}/ready`)).status).toBe(200);
      const viewer = await gateway.http(VIEWER, {}, await tokenFor('after'));
      expect(viewer.body.data?.['viewer']).toMatchObject({ id: 'after' });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: GraphQLBody | undefined;
}

async function rawHttp(
  gateway: TestGateway,
  init: { method?: string; body?: string | Buffer; contentType?: string | undefined; accept?: string; token?: string; search?: string },
): Promise<RawResponse> {
  const response = await fetch(`${gateway.httpUrl}${init.search ?? ''}`, {
    method: init.method ?? 'POST',
    headers: {
      accept: init.accept ?? 'application/graphql-response+json, application/json',
      ...(init.contentType ? { 'content-type': init.contentType } : {}),
      authorization: `Bearer ${init.token ?? (await tokenFor('offender-service', ['service']))}`,
    },
    ...(init.body !== undefined ? { body: typeof init.body === 'string' ? init.body : Uint8Array.from(init.body) } : {}),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  let body: GraphQLBody | undefined;
  try {
    body = JSON.parse(text) as GraphQLBody;
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, text, body };
}

const postJson = (gateway: TestGateway, body: string | Buffer, token?: string) =>
  rawHttp(gateway, { body, contentType: 'application/json', ...(token ? { token } : {}) });

const operation = (query: string, variables?: unknown, operationName?: string) => JSON.stringify({ query, variables, operationName });

describe('bad input over HTTP (POST /graphql)', () => {
  it.each([
    ['a truncated body', '{"query": "{ viewer { id } }", '],
    ['trailing garbage', '{"query": "{ viewer { id } }"}}'],
    ['single quotes', "{'query': '{ viewer { id } }'}"],
    ['an empty body', ''],
    ['binary bytes', Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe])],
  ])('answers malformed JSON (%s) with 400 BAD_REQUEST', async (_case, body) => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const response = await during(() => postJson(gateway, body));
    expect(response.status).toBe(400);
    expect(codesOf(response.body)).toEqual(['BAD_REQUEST']);
    expect(response.body?.errors?.[0]?.message).toBe('POST body sent invalid JSON.');
    await expectBystanderUnharmed();
  });

  it('answers JSON that is not one operation object with 400 BAD_REQUEST', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const bodies = ['null', '42', '"{ viewer { id } }"', '[{"query":"{ viewer { id } }"}]', '{"query": 42}', '{"query": {"kind": "Document"}}'];
    const responses = await during(() => Promise.all(bodies.map((body) => postJson(gateway, body))));
    expect(responses.map((response) => [response.status, codesOf(response.body)])).toEqual(bodies.map(() => [400, ['BAD_REQUEST']]));
    expect(responses.map((response) => response.body?.errors?.[0]?.message)).toEqual([
      'POST body is expected to be object but received null',
      'POST body is expected to be object but received number',
      'POST body is expected to be object but received string',
      'Batching is not supported.',
      'Expected "query" param to be a string, but given number.',
      'Expected "query" param to be a string, but given object.',
    ]);
    await expectBystanderUnharmed();
  });

  it('refuses non-JSON content types with 415, without executing anything', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    // Would publish to the bystander's hotel if it were executed.
    const publish = operation(`mutation { publishPrice(input: { hotelId: "${BYSTANDER_HOTEL}", roomType: "X", price: { amountMinor: 999999, currency: "EUR" } }) { eventId } }`);
    const contentTypes = ['text/plain', 'application/xml', 'application/octet-stream', 'image/png', undefined];
    const responses = await during(() => Promise.all(contentTypes.map((contentType) => rawHttp(gateway, { body: publish, contentType }))));
    expect(responses.map((response) => response.status)).toEqual(contentTypes.map(() => 415));
    await expectBystanderUnharmed();
  });

  it('refuses a mutation over GET with 405 (GraphQL over HTTP) and does not run it', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const mutation = `mutation Sneaky { publishPrice(input: { hotelId: "${BYSTANDER_HOTEL}", roomType: "X", price: { amountMinor: 999999, currency: "EUR" } }) { eventId } }`;
    const [alone, selected, query] = await during(() =>
      Promise.all([
        rawHttp(gateway, { method: 'GET', search: `?query=${encodeURIComponent(mutation)}` }),
        rawHttp(gateway, { method: 'GET', search: `?query=${encodeURIComponent(`query Harmless { viewer { id } } ${mutation}`)}&operationName=Sneaky` }),
        rawHttp(gateway, { method: 'GET', search: `?query=${encodeURIComponent(VIEWER)}` }),
      ]),
    );
    for (const refused of [alone, selected]) {
      expect(refused.status).toBe(405);
      expect(refused.headers.get('allow')).toBe('POST');
      expect(codesOf(refused.body)).toEqual(['BAD_REQUEST']);
      expect(refused.body?.errors?.[0]?.message).toMatch(/mutation operation from a POST request/);
    }
    // GET itself works for queries.
    expect(query.status).toBe(200);
    expect(query.body?.data?.['viewer']).toMatchObject({ id: 'offender-service' });
    await expectBystanderUnharmed();
  });

  it('answers malformed JSON in the GET variables and extensions parameters with 400 BAD_REQUEST, not a 500', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const query = encodeURIComponent('query Viewer($h: ID) { viewer { id } }');
    const responses = await during(() =>
      Promise.all([
        rawHttp(gateway, { method: 'GET', search: `?query=${query}&variables=${encodeURIComponent('{"h": ')}` }),
        rawHttp(gateway, { method: 'GET', search: `?query=${query}&variables=${encodeURIComponent("{'h': 1}")}` }),
        rawHttp(gateway, { method: 'GET', search: `?query=${query}&extensions=${encodeURIComponent('{nope')}` }),
      ]),
    );
    expect(responses.map((response) => [response.status, codesOf(response.body)])).toEqual(responses.map(() => [400, ['BAD_REQUEST']]));
    await expectBystanderUnharmed();
  });

  it('answers variables that are not an object with 400 BAD_REQUEST', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const variables = [[priceInput('hotel-1')], '{"input":{}}', 42, true];
    const responses = await during(() => Promise.all(variables.map((value) => postJson(gateway, operation(PUBLISH_PRICE, value)))));
    expect(responses.map((response) => [response.status, codesOf(response.body)])).toEqual(variables.map(() => [400, ['BAD_REQUEST']]));
    expect(responses[0]?.body?.errors?.[0]?.message).toBe('Expected "variables" param to be empty or an object, but given array.');
    await expectBystanderUnharmed();
  });

  it('answers variables of the wrong type with 400 BAD_USER_INPUT naming the variable (docs/ERRORS.md)', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const input = priceInput('hotel-1').input;
    const cases: Array<[string, unknown, RegExp]> = [
      ['a string for an Int', { input: { ...input, price: { amountMinor: 'lots', currency: 'EUR' } } }, /input\.price\.amountMinor/],
      ['a float for an Int', { input: { ...input, price: { amountMinor: 1.5, currency: 'EUR' } } }, /input\.price\.amountMinor/],
      ['an object for an ID', { input: { ...input, hotelId: { $ne: null } } }, /input\.hotelId/],
      ['null for a non-null field', { input: { ...input, roomType: null } }, /input\.roomType/],
      ['a list for a String', { input: { ...input, roomType: ['DOUBLE'] } }, /input\.roomType/],
      ['an unknown field', { input: { ...input, admin: true } }, /"admin" is not defined/],
      ['a missing variable', {}, /\$input/],
    ];
    const responses = await during(() => Promise.all(cases.map(([, variables]) => postJson(gateway, operation(PUBLISH_PRICE, variables)))));
    expect(responses.map((response) => [response.status, codesOf(response.body)])).toEqual(cases.map(() => [400, ['BAD_USER_INPUT']]));
    responses.forEach((response, index) => expect(response.body?.errors?.[0]?.message).toMatch(cases[index]?.[2] as RegExp));
    await expectBystanderUnharmed();
  });

  it('answers deeply nested JSON variables with 400 BAD_USER_INPUT and ignores an undeclared one', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = (variables: string) => `{"query":${JSON.stringify(PUBLISH_PRICE)},"variables":${variables}}`;
    const [deepObject, deepArray, undeclared] = await during(() =>
      Promise.all([
        postJson(gateway, raw(deepPriceVariables('price'))),
        postJson(gateway, raw(deepPriceVariables('roomType'))),
        postJson(gateway, raw(`{"input":${JSON.stringify(priceInput('hotel-undeclared').input)},"junk":${DEEP_ARRAY}}`)),
      ]),
    );
    for (const response of [deepObject, deepArray]) {
      expect(response.status).toBe(400);
      expect(new Set(codesOf(response.body))).toEqual(new Set(['BAD_USER_INPUT']));
      // The value is summarised, never echoed back whole.
      expect(response.text.length).toBeLessThan(5_000);
    }
    expect(deepObject.body?.errors?.[0]?.message).toMatch(/input\.price/);
    expect(deepArray.body?.errors?.[0]?.message).toMatch(/input\.roomType/);
    expect(undeclared.status).toBe(200);
    expect(undeclared.body?.data?.['publishPrice']).toMatchObject({ eventId: expect.any(String) });
    await expectBystanderUnharmed();
  });

  it('answers 200 KB strings in mutation arguments with BAD_USER_INPUT naming the field, without echoing them', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const alice = await tokenFor('alice');
    const session = await gateway.http(START_CHAT, {}, alice);
    const sessionId = (session.body.data?.['startChatSession'] as { id: string }).id;
    const input = priceInput(BYSTANDER_HOTEL).input;
    const responses = await during(() =>
      Promise.all([
        postJson(gateway, operation(PUBLISH_PRICE, { input: { ...input, roomType: HUGE } })),
        postJson(gateway, operation(PUBLISH_PRICE, { input: { ...input, price: { amountMinor: 1, currency: HUGE } } })),
        postJson(gateway, operation(PUBLISH_MESSAGE, { input: { messageId: 'm-1', conversationId: 'c-1', senderId: 'alice', text: HUGE } })),
        postJson(gateway, operation(SEND_CHAT, { sessionId, text: HUGE }), alice),
      ]),
    );
    expect(responses.map((response) => [response.status, codesOf(response.body)])).toEqual(responses.map(() => [200, ['BAD_USER_INPUT']]));
    expect(responses.map((response) => response.body?.errors?.[0]?.message)).toEqual([
      'Invalid priceUpdated event: roomType: Too big: expected string to have <=64 characters',
      'Invalid priceUpdated event: price.currency: must be an ISO 4217 code such as EUR',
      'Invalid newMessage event: text: Too big: expected string to have <=4000 characters',
      'text: give 1 to 4000 characters',
    ]);
    for (const response of responses) expect(response.text.length).toBeLessThan(2_000);
    await expectBystanderUnharmed();
  });

  it.each(WEIRD_IDS)('answers an id with %s with BAD_USER_INPUT naming the argument', async (_case, hotelId) => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const response = await during(() => postJson(gateway, operation(PUBLISH_PRICE, priceInput(hotelId))));
    expect(response.status).toBe(200);
    expect(codesOf(response.body)).toEqual(['BAD_USER_INPUT']);
    expect(response.body?.errors?.[0]?.message).toBe('Invalid priceUpdated event: hotelId: must be 1-128 characters of letters, digits and _ . @ -');
    expect(response.body?.data ?? null).toBeNull();
    await expectBystanderUnharmed();
  });

  it('answers invalid UTF-8 bytes inside an id with BAD_USER_INPUT', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const [before, after] = operation(PUBLISH_PRICE, priceInput('HOLE')).split('HOLE') as [string, string];
    const body = Buffer.concat([Buffer.from(before), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80]), Buffer.from(after)]);
    const response = await during(() => postJson(gateway, body));
    expect(response.status).toBe(200);
    expect(codesOf(response.body)).toEqual(['BAD_USER_INPUT']);
    expect(response.body?.errors?.[0]?.message).toMatch(/hotelId: must be 1-128 characters/);
    await expectBystanderUnharmed();
  });

  it('answers an unknown or missing operation name with 400 and a coded error, without running anything', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const publish = `mutation Publish { publishPrice(input: { hotelId: "${BYSTANDER_HOTEL}", roomType: "X", price: { amountMinor: 999999, currency: "EUR" } }) { eventId } }`;
    const responses = await during(() =>
      Promise.all([
        postJson(gateway, operation(publish, undefined, 'Nope')),
        postJson(gateway, operation(`${publish} query Other { viewer { id } }`)),
        postJson(gateway, JSON.stringify({ query: publish, operationName: 42 })),
      ]),
    );
    expect(responses.map((response) => [response.status, codesOf(response.body)])).toEqual(responses.map(() => [400, ['OPERATION_RESOLUTION_FAILURE']]));
    expect(responses[0]?.body?.errors?.[0]?.message).toBe('Could not determine what operation to execute.');
    await expectBystanderUnharmed();
  });
});

// ---------------------------------------------------------------------------------------------
// SSE

interface SseAnswer {
  readonly status: number;
  readonly contentType: string | null;
  /** The `data` of every `next` event. */
  readonly next: GraphQLBody[];
  readonly completed: boolean;
}

/** One operation over Yoga's SSE (graphql-sse distinct connections mode); reads to the end. */
async function sse(
  gateway: TestGateway,
  init: { method?: string; body?: string; contentType?: string; search?: string; token?: string },
): Promise<SseAnswer> {
  const response = await fetch(`${gateway.httpUrl}${init.search ?? ''}`, {
    method: init.method ?? 'POST',
    headers: {
      accept: 'text/event-stream',
      authorization: `Bearer ${init.token ?? (await tokenFor('offender'))}`,
      ...(init.contentType !== undefined || init.body !== undefined ? { 'content-type': init.contentType ?? 'application/json' } : {}),
    },
    ...(init.body !== undefined ? { body: init.body } : {}),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  const blocks = text.split('\n\n').map((block) => {
    const lines = block.split('\n');
    return {
      event: lines.find((line) => line.startsWith('event:'))?.slice(6).trim(),
      data: lines.find((line) => line.startsWith('data:'))?.slice(5).trim(),
    };
  });
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    next: blocks.filter((block) => block.event === 'next').map((block) => JSON.parse(block.data ?? 'null') as GraphQLBody),
    completed: blocks.some((block) => block.event === 'complete'),
  };
}

/** Runs one operation with the graphql-sse client, as a browser app would; resolves when it ends. */
async function withGraphqlSseClient(gateway: TestGateway, payload: { query: string; variables?: unknown; operationName?: string }) {
  const client = createSseClient({
    url: gateway.httpUrl,
    headers: { authorization: `Bearer ${await tokenFor('offender')}` },
    singleConnection: false,
    retryAttempts: 0,
  });
  const results: GraphQLBody[] = [];
  try {
    const failure = await new Promise<unknown>((resolve) => {
      // Bad input must end the operation; one that stays open would be a bug of its own.
      const open = setTimeout(() => resolve('still open after 5 s'), 5_000);
      const end = (value: unknown) => {
        clearTimeout(open);
        resolve(value);
      };
      client.subscribe(payload as { query: string; variables?: Record<string, unknown> }, {
        next: (value) => void results.push(value as GraphQLBody),
        error: (error: unknown) => end(error ?? 'error'),
        complete: () => end(undefined),
      });
    });
    return { results, failure: failure instanceof Error ? `${failure.name}: ${failure.message}` : failure };
  } finally {
    client.dispose();
  }
}

describe('bad input over SSE', () => {
  it('answers malformed JSON with a BAD_REQUEST next event on an accepted stream', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const answers = await during(() => Promise.all(['{"query": ', '', "{'query': 1}"].map((body) => sse(gateway, { body }))));
    expect(answers.map((answer) => [answer.status, answer.next.map(codesOf), answer.completed])).toEqual(answers.map(() => [200, [['BAD_REQUEST']], true]));
    for (const answer of answers) expect(answer.contentType).toContain('text/event-stream');
    await expectBystanderUnharmed();
  });

  // graphql-sse PROTOCOL.md, distinct connections mode: "Validation steps that run before execution
  // of the GraphQL operation MUST report errors through an accepted SSE connection by emitting
  // `next` events"; a 400 makes clients (graphql-sse, EventSource) fail with no usable error.
  it('answers JSON that is not one operation object with a BAD_REQUEST next event on an accepted stream', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const bodies = ['null', '[]', '{"query": 42}', '[{"query":"{ viewer { id } }"}]'];
    const answers = await during(() => Promise.all(bodies.map((body) => sse(gateway, { body }))));
    expect(answers.map((answer) => [answer.status, answer.next.map(codesOf), answer.completed])).toEqual(bodies.map(() => [200, [['BAD_REQUEST']], true]));
    await expectBystanderUnharmed();
  });

  it('answers malformed JSON in the GET variables parameter (EventSource style) with a BAD_REQUEST next event, not a 500', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const answer = await during(() =>
      sse(gateway, { method: 'GET', search: `?query=${encodeURIComponent(SUBSCRIBE_PRICES)}&variables=${encodeURIComponent('{"hotelId": ')}` }),
    );
    expect([answer.status, answer.next.map(codesOf), answer.completed]).toEqual([200, [['BAD_REQUEST']], true]);
    expect(gateway.app.services.bus.activeTopicCount()).toBe(1); // the bystander's
    await expectBystanderUnharmed();
  });

  it('refuses non-JSON content types with 415', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const body = operation(SUBSCRIBE_PRICES, { hotelId: 'hotel-1' });
    const answers = await during(() => Promise.all(['text/plain', 'application/octet-stream'].map((contentType) => sse(gateway, { body, contentType }))));
    expect(answers.map((answer) => answer.status)).toEqual([415, 415]);
    expect(gateway.app.services.bus.subscriberCount(topics.hotelPrices('hotel-1'))).toBe(0);
    await expectBystanderUnharmed();
  });

  it('refuses a mutation over GET with 405 and does not run it', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const mutation = `mutation { publishPrice(input: { hotelId: "${BYSTANDER_HOTEL}", roomType: "X", price: { amountMinor: 999999, currency: "EUR" } }) { eventId } }`;
    const service = await tokenFor('offender-service', ['service']);
    const answer = await during(() => sse(gateway, { method: 'GET', search: `?query=${encodeURIComponent(mutation)}`, token: service }));
    expect(answer.status).toBe(405);
    expect(answer.next.map(codesOf)).toEqual([['BAD_REQUEST']]);
    await expectBystanderUnharmed();
  });

  it.each(WEIRD_IDS)('answers a subscription to an id with %s with one BAD_USER_INPUT event and completes', async (_case, hotelId) => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const answer = await during(() => sse(gateway, { body: operation(SUBSCRIBE_PRICES, { hotelId }) }));
    expect(answer.status).toBe(200);
    expect(answer.next.map(codesOf)).toEqual([['BAD_USER_INPUT']]);
    expect(answer.next[0]?.errors?.[0]?.message).toBe('hotelId: must be 1-128 characters of letters, digits and _ . @ -');
    expect(answer.completed).toBe(true);
    expect(gateway.app.services.bus.activeTopicCount()).toBe(1); // the bystander's
    await expectBystanderUnharmed();
  });

  it('answers a 200 KB string in a mutation sent over SSE with BAD_USER_INPUT', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const service = await tokenFor('offender-service', ['service']);
    const answer = await during(() =>
      sse(gateway, { body: operation(PUBLISH_PRICE, { input: { ...priceInput(BYSTANDER_HOTEL).input, roomType: HUGE } }), token: service }),
    );
    expect(answer.status).toBe(200);
    expect(answer.next.map(codesOf)).toEqual([['BAD_USER_INPUT']]);
    expect(answer.next[0]?.errors?.[0]?.message).toMatch(/^Invalid priceUpdated event: roomType: Too big/);
    await expectBystanderUnharmed();
  });

  it('gives the graphql-sse client the parse and validation errors as results, per its protocol', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const [syntax, unknownField] = await during(() =>
      Promise.all([
        withGraphqlSseClient(gateway, { query: 'subscription { priceUpdated(' }),
        withGraphqlSseClient(gateway, { query: 'subscription { priceUpdated(hotelId: "h") { nope } }' }),
      ]),
    );
    expect(syntax).toMatchObject({ failure: undefined });
    expect(syntax.results.map(codesOf)).toEqual([['GRAPHQL_PARSE_FAILED']]);
    expect(unknownField).toMatchObject({ failure: undefined });
    expect(unknownField.results.map(codesOf)).toEqual([['GRAPHQL_VALIDATION_FAILED']]);
    await expectBystanderUnharmed();
  });

  // Per graphql-sse PROTOCOL.md (see above): errors found before execution are `next` events on an
  // accepted stream; a 400 makes the client fail with an opaque NetworkError instead.
  it.each([
    ['variables of the wrong type', { query: SUBSCRIBE_PRICES, variables: { hotelId: 4.5 } }, 'BAD_USER_INPUT'],
    ['deeply nested variables', { query: SUBSCRIBE_PRICES, variables: { hotelId: JSON.parse(nest(2_000, '[', ']', '"x"')) as unknown } }, 'BAD_USER_INPUT'],
    ['an unknown operation name', { query: SUBSCRIBE_PRICES, variables: { hotelId: 'hotel-1' }, operationName: 'Nope' }, 'OPERATION_RESOLUTION_FAILURE'],
    ['variables that are an array', { query: SUBSCRIBE_PRICES, variables: ['hotel-1'] }, 'BAD_REQUEST'],
  ])('gives the graphql-sse client %s as a coded error result, not a failed connection', async (_case, payload, expected) => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const outcome = await during(() => withGraphqlSseClient(gateway, payload));
    expect(outcome.failure).toBeUndefined();
    expect(outcome.results.map(codesOf)).toEqual([[expected]]);
    await expectBystanderUnharmed();
  });
});

// ---------------------------------------------------------------------------------------------
// WebSocket

/** Sends one operation and waits for its first answer (`next` or `error`). */
async function ask(raw: RawSocket, id: string, payload: Record<string, unknown>): Promise<Record<string, unknown>> {
  raw.send({ id, type: 'subscribe', payload });
  return raw.waitForMessage((message) => message['id'] === id && (message['type'] === 'next' || message['type'] === 'error'));
}

/** The GraphQL errors of an answer, whether a `next` result or a protocol `error` message. */
function errorsOf(message: Record<string, unknown>): Array<{ message: string; extensions?: Record<string, unknown> }> {
  const payload = message['payload'];
  if (message['type'] === 'error') return payload as Array<{ message: string; extensions?: Record<string, unknown> }>;
  return ((payload as GraphQLBody | undefined)?.errors ?? []) as Array<{ message: string; extensions?: Record<string, unknown> }>;
}

async function offenderSocket(gateway: TestGateway, roles: Array<'user' | 'service'> = ['service']) {
  const raw = await openRawSocket(gateway.wsUrl);
  await raw.init(await tokenFor(roles.includes('service') ? 'offender-service' : 'offender', roles));
  return raw;
}

/** The offender's own socket still works: only the bad operation failed. */
async function expectSocketStillServes(raw: RawSocket, id = 'still-there') {
  const answer = await ask(raw, id, { query: VIEWER });
  expect((answer['payload'] as GraphQLBody).data?.['viewer']).toMatchObject({ id: expect.stringMatching(/^offender/) });
  expect(raw.socket.readyState).toBe(raw.socket.OPEN);
}

describe('bad input over WebSocket', () => {
  it('answers variables of the wrong type with BAD_USER_INPUT for that operation only (docs/ERRORS.md)', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = await offenderSocket(gateway);
    const input = priceInput('hotel-1').input;
    const answers = await during(() =>
      Promise.all([
        ask(raw, 'mutation-string-for-int', { query: PUBLISH_PRICE, variables: { input: { ...input, price: { amountMinor: 'lots', currency: 'EUR' } } } }),
        ask(raw, 'mutation-object-for-id', { query: PUBLISH_PRICE, variables: { input: { ...input, hotelId: { $ne: null } } } }),
        ask(raw, 'mutation-missing', { query: PUBLISH_PRICE, variables: {} }),
        ask(raw, 'subscription-float-for-id', { query: SUBSCRIBE_PRICES, variables: { hotelId: 4.5 } }),
      ]),
    );
    expect(answers.map((answer) => [answer['id'], answer['type'], errorsOf(answer).map(code)])).toEqual([
      ['mutation-string-for-int', 'next', ['BAD_USER_INPUT']],
      ['mutation-object-for-id', 'next', ['BAD_USER_INPUT']],
      ['mutation-missing', 'next', ['BAD_USER_INPUT']],
      ['subscription-float-for-id', 'next', ['BAD_USER_INPUT']],
    ]);
    expect(errorsOf(answers[0] as Record<string, unknown>)[0]?.message).toMatch(/input\.price\.amountMinor/);
    await expectSocketStillServes(raw);
    await expectBystanderUnharmed();
  });

  it('sends no http extension in errors over the socket (it means nothing there)', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = await offenderSocket(gateway);
    const answers = await during(() =>
      Promise.all([
        ask(raw, 'mutation', { query: PUBLISH_PRICE, variables: { input: { ...priceInput('h').input, roomType: 7 } } }),
        ask(raw, 'subscription', { query: SUBSCRIBE_PRICES, variables: { hotelId: 4.5 } }),
      ]),
    );
    for (const answer of answers) {
      expect(errorsOf(answer).length).toBeGreaterThan(0);
      for (const error of errorsOf(answer)) expect(error.extensions ?? {}).not.toHaveProperty('http');
    }
    await expectBystanderUnharmed();
  });

  it('answers deeply nested variables with BAD_USER_INPUT, keeping the socket', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = await offenderSocket(gateway);
    const subscribe = (id: string, query: string, variables: string) =>
      `{"id":${JSON.stringify(id)},"type":"subscribe","payload":{"query":${JSON.stringify(query)},"variables":${variables}}}`;
    const answers = await during(async () => {
      raw.sendRaw(subscribe('deep-object', PUBLISH_PRICE, deepPriceVariables('price')));
      raw.sendRaw(subscribe('deep-array', PUBLISH_PRICE, deepPriceVariables('roomType')));
      raw.sendRaw(subscribe('deep-id', SUBSCRIBE_PRICES, `{"hotelId":${DEEP_ARRAY}}`));
      return Promise.all(
        ['deep-object', 'deep-array', 'deep-id'].map((id) => raw.waitForMessage((message) => message['id'] === id && message['type'] !== 'complete')),
      );
    });
    expect(answers.map((answer) => [answer['id'], answer['type'], [...new Set(errorsOf(answer).map(code))]])).toEqual([
      ['deep-object', 'next', ['BAD_USER_INPUT']],
      ['deep-array', 'next', ['BAD_USER_INPUT']],
      ['deep-id', 'next', ['BAD_USER_INPUT']],
    ]);
    for (const answer of answers) expect(JSON.stringify(answer).length).toBeLessThan(5_000);
    await expectSocketStillServes(raw);
    await expectBystanderUnharmed();
  });

  it('answers 200 KB strings in mutation arguments with BAD_USER_INPUT, keeping the socket', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const service = await offenderSocket(gateway);
    const user = await offenderSocket(gateway, ['user']);
    const session = await ask(user, 'session', { query: START_CHAT });
    const sessionId = ((session['payload'] as GraphQLBody).data?.['startChatSession'] as { id: string }).id;
    const input = priceInput(BYSTANDER_HOTEL).input;
    const answers = await during(async () => [
      await ask(service, 'room-type', { query: PUBLISH_PRICE, variables: { input: { ...input, roomType: HUGE } } }),
      await ask(service, 'hotel-id', { query: PUBLISH_PRICE, variables: { input: { ...input, hotelId: HUGE } } }),
      await ask(service, 'message', { query: PUBLISH_MESSAGE, variables: { input: { messageId: 'm-1', conversationId: 'c-1', senderId: 'alice', text: HUGE } } }),
      await ask(user, 'chat', { query: SEND_CHAT, variables: { sessionId, text: HUGE } }),
    ]);
    expect(answers.map((answer) => [answer['type'], errorsOf(answer).map(code)])).toEqual(answers.map(() => ['next', ['BAD_USER_INPUT']]));
    expect(answers.map((answer) => errorsOf(answer)[0]?.message)).toEqual([
      'Invalid priceUpdated event: roomType: Too big: expected string to have <=64 characters',
      'Invalid priceUpdated event: hotelId: must be 1-128 characters of letters, digits and _ . @ -',
      'Invalid newMessage event: text: Too big: expected string to have <=4000 characters',
      'text: give 1 to 4000 characters',
    ]);
    for (const answer of answers) expect(JSON.stringify(answer).length).toBeLessThan(2_000);
    await expectSocketStillServes(service, 'service-still-there');
    await expectSocketStillServes(user, 'user-still-there');
    await expectBystanderUnharmed();
  });

  it.each(WEIRD_IDS)('answers an id with %s with BAD_USER_INPUT in subscriptions and mutations, keeping the socket', async (_case, hotelId) => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = await offenderSocket(gateway);
    const [subscription, mutation] = await during(() =>
      Promise.all([ask(raw, 'subscription', { query: SUBSCRIBE_PRICES, variables: { hotelId } }), ask(raw, 'mutation', { query: PUBLISH_PRICE, variables: priceInput(hotelId) })]),
    );
    expect([subscription, mutation].map((answer) => [answer['type'], errorsOf(answer).map(code)])).toEqual([
      ['next', ['BAD_USER_INPUT']],
      ['next', ['BAD_USER_INPUT']],
    ]);
    expect(errorsOf(subscription as Record<string, unknown>)[0]?.message).toBe('hotelId: must be 1-128 characters of letters, digits and _ . @ -');
    await raw.waitForMessage((message) => message['id'] === 'subscription' && message['type'] === 'complete');
    expect(gateway.app.services.bus.activeTopicCount()).toBe(1); // the bystander's
    await expectSocketStillServes(raw);
    await expectBystanderUnharmed();
  });

  it('answers an unknown operation name with the same coded error as HTTP, without running the mutation', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = await offenderSocket(gateway);
    const publish = `mutation Publish { publishPrice(input: { hotelId: "${BYSTANDER_HOTEL}", roomType: "X", price: { amountMinor: 999999, currency: "EUR" } }) { eventId } }`;
    const overHttp = await postJson(gateway, operation(publish, undefined, 'Nope'));
    const answers = await during(() =>
      Promise.all([
        ask(raw, 'unknown-name', { query: publish, operationName: 'Nope' }),
        ask(raw, 'two-operations-no-name', { query: `${publish} query Other { viewer { id } }` }),
      ]),
    );
    const httpCode = code(overHttp.body?.errors?.[0]);
    expect(httpCode).toBe('OPERATION_RESOLUTION_FAILURE');
    for (const answer of answers) {
      expect(answer['type']).toBe('error');
      expect(errorsOf(answer).map(code)).toEqual([httpCode]);
    }
    await expectSocketStillServes(raw);
    await expectBystanderUnharmed();
  });

  // The graphql-transport-ws protocol allows only an object (or null) as `variables`, so such a
  // subscribe is an invalid message: 4400, like bad JSON. (docs/ERRORS.md: "malformed variables
  // in one operation never close the socket" is about values, not the shape of the message.)
  it.each([
    ['an array', '["hotel-1"]'],
    ['a string', '"{\\"hotelId\\":\\"hotel-1\\"}"'],
    ['a number', '42'],
  ])('closes with 4400 when variables are %s, releasing the offender\'s subscriptions', async (_case, variables) => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = await offenderSocket(gateway);
    raw.send({ id: 'open', type: 'subscribe', payload: { query: SUBSCRIBE_PRICES, variables: { hotelId: 'hotel-offender' } } });
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-offender'));
    const closed = await during(async () => {
      raw.sendRaw(`{"id":"bad","type":"subscribe","payload":{"query":${JSON.stringify(SUBSCRIBE_PRICES)},"variables":${variables}}}`);
      return raw.waitForClose();
    });
    expect(closed.code).toBe(4400);
    expect(gateway.app.services.bus.subscriberCount(topics.hotelPrices('hotel-offender'))).toBe(0);
    await expectBystanderUnharmed();
  });

  it('closes with 4400 on malformed JSON after connection_ack, releasing the offender\'s subscriptions', async () => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = await offenderSocket(gateway);
    raw.send({ id: 'open', type: 'subscribe', payload: { query: SUBSCRIBE_PRICES, variables: { hotelId: 'hotel-offender' } } });
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-offender'));
    const closed = await during(async () => {
      raw.sendRaw('{"id":"x","type":"subscribe","payload":{"query":"{ viewer { id } }"');
      return raw.waitForClose();
    });
    expect(closed.code).toBe(4400);
    expect(gateway.app.services.bus.subscriberCount(topics.hotelPrices('hotel-offender'))).toBe(0);
    await expectBystanderUnharmed();
  });

  // protocol-abuse.test.ts covers a string payload; these are the other JSON shapes.
  it.each([
    ['a number', 42, 4400],
    ['an array', [{ authorization: 'Bearer x' }], 4400],
    ['a boolean', true, 4400],
    ['null (no credentials)', null, 4403],
    ['an object with a non-string authorization', { authorization: { bearer: 'x' } }, 4403],
    ['an object with a 100 KB authorization', { authorization: `Bearer ${'x'.repeat(100_000)}` }, 4403],
  ])('closes a connection_init whose payload is %s with its documented code', async (_case, payload, expected) => {
    const { gateway, during, expectBystanderUnharmed } = await gatewayWithBystander();
    const raw = await openRawSocket(gateway.wsUrl);
    const closed = await during(async () => {
      raw.send({ type: 'connection_init', payload });
      return raw.waitForClose();
    });
    expect(closed.code).toBe(expected);
    expect(raw.messages.some((message) => message['type'] === 'connection_ack')).toBe(false);
    await expectBystanderUnharmed();
  });
});
