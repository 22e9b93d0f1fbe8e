import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { print } from 'graphql';
import { createClient as createSseClient, type ExecutionResult } from 'graphql-sse';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import {
  createTidingsClient,
  PriceUpdatedSubscription,
  StartChatSessionMutation,
  ViewerQuery,
  type TidingsClientOptions,
} from '@tidings/client';
import { ConfigError } from '../src/config/config.js';
import { topics } from '../src/events/topics.js';
import { startGateway, testConfig, tokenFor, type TestGateway } from './support/gateway.js';
import { priceInput, PUBLISH_PRICE } from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * TRUSTED_DOCUMENTS on every transport: users run only the manifest's documents, by hash, and any
 * text (even one that would not parse) is refused before parsing, over HTTP, SSE and WebSocket
 * alike; services still send documents of their own; the client sends hashes when asked.
 */
const MANIFEST = fileURLToPath(new URL('../client/src/generated/persisted-documents.json', import.meta.url));
const hashOf = (document: unknown) => (document as { __meta__: { hash: string } }).__meta__.hash;
const PRICE_HASH = hashOf(PriceUpdatedSubscription);
const VIEWER_HASH = hashOf(ViewerQuery);
const UNKNOWN_HASH = `sha256:${'0'.repeat(64)}`;
const UNTRUSTED = 'subscription Mine { priceUpdated(hotelId: "h1") { id hotelId } }';
const byHash = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

async function post(gateway: TestGateway, body: Record<string, unknown>, token: string) {
  const response = await fetch(gateway.httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as { data?: unknown; errors?: Array<{ extensions?: Record<string, unknown> }> } };
}

const codes = (result: { errors?: ReadonlyArray<{ extensions?: Record<string, unknown> }> | undefined }) =>
  result.errors?.map((error) => `${String(error.extensions?.['code'])}/${String(error.extensions?.['reason'] ?? '')}`);

async function refusals(gateway: TestGateway): Promise<Record<string, number>> {
  const metric = await gateway.app.metrics.registry.getSingleMetric('tidings_trusted_document_refusals_total')?.get();
  return Object.fromEntries((metric?.values ?? []).map((value) => [`${value.labels['transport']}/${value.labels['reason']}`, value.value]));
}

function sseSubscribe(gateway: TestGateway, token: string, request: { query: string; variables?: Record<string, unknown>; extensions?: Record<string, unknown> }) {
  const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  onTestFinished(() => sse.dispose());
  const results: ExecutionResult[] = [];
  let ended = false;
  sse.subscribe(request, { next: (value) => void results.push(value as ExecutionResult), error: () => (ended = true), complete: () => (ended = true) });
  return { results, ended: () => ended };
}

describe('trusted documents (TRUSTED_DOCUMENTS)', () => {
  it('HTTP: a user runs a manifest document by hash; a text, a missing or unknown hash is refused with its code before parsing; a service sends its own', async () => {
    const gateway = await startGateway({ TRUSTED_DOCUMENTS: MANIFEST });
    const user = await tokenFor('pat');

    const trusted = await post(gateway, { extensions: byHash(VIEWER_HASH) }, user);
    expect(trusted).toEqual({ status: 200, body: { data: { viewer: { id: 'pat', anonymous: false, roles: ['USER'], tokenExpiresAt: expect.any(String) } } } });
    // Apollo's form (the bare digest) names the same document.
    expect((await post(gateway, { extensions: byHash(VIEWER_HASH.slice('sha256:'.length)) }, user)).status).toBe(200);

    // The manifest's own text, sent as text, is refused too: a user may not send text at all.
    const asText = await post(gateway, { query: print(ViewerQuery) }, user);
    expect([asText.status, codes(asText.body)]).toEqual([400, ['TRUSTED_DOCUMENT_REQUIRED/document_text']]);
    // Never parsed: a text that does not parse gets the same refusal, not GRAPHQL_PARSE_FAILED.
    expect(codes((await post(gateway, { query: '{{{ not graphql' }, user)).body)).toEqual(['TRUSTED_DOCUMENT_REQUIRED/document_text']);
    expect(codes((await post(gateway, {}, user)).body)).toEqual(['TRUSTED_DOCUMENT_REQUIRED/no_hash']);
    const unknown = await post(gateway, { extensions: byHash(UNKNOWN_HASH) }, user);
    expect([unknown.status, codes(unknown.body)]).toEqual([400, ['TRUSTED_DOCUMENT_NOT_FOUND/']]);
    // A hash with a text of its own: the text is what would run, so it is refused.
    expect(codes((await post(gateway, { query: 'query { viewer { id } }', extensions: byHash(VIEWER_HASH) }, user)).body)).toEqual(['TRUSTED_DOCUMENT_REQUIRED/document_text']);
    // An invalid token is no service.
    expect(codes((await post(gateway, { query: 'query { viewer { id } }' }, 'not-a-token')).body)).toEqual(['TRUSTED_DOCUMENT_REQUIRED/document_text']);

    // GET, by hash in the extensions parameter.
    const get = await fetch(`${gateway.httpUrl}?extensions=${encodeURIComponent(JSON.stringify(byHash(VIEWER_HASH)))}`, {
      headers: { accept: 'application/graphql-response+json', authorization: `Bearer ${user}` },
    });
    expect(((await get.json()) as { data: { viewer: { id: string } } }).data.viewer.id).toBe('pat');

    // Services publish with documents of their own.
    await gateway.publish(PUBLISH_PRICE, priceInput('h1'));
    expect(await refusals(gateway)).toEqual({ 'http/document_text': 4, 'http/no_hash': 1, 'http/unknown_hash': 1 });
  });

  it('WebSocket: connection_ack asks for hashes; a user token sending a document over the socket is refused, by hash it is delivered; a service may send text', async () => {
    const gateway = await startGateway({ TRUSTED_DOCUMENTS: MANIFEST });
    const user = await tokenFor('pat');
    let ackPayload: unknown;
    const socket = connectWs(gateway.wsUrl, user);
    socket.client.on('connected', (_socket, payload) => (ackPayload = payload));

    const untrusted = record(socket.client, UNTRUSTED);
    await untrusted.waitForEnd();
    expect(ackPayload).toEqual({ refreshSession: true, trustedDocuments: true });
    expect(codes({ errors: untrusted.failure.value as never })).toEqual(['TRUSTED_DOCUMENT_REQUIRED/document_text']);
    const garbage = record(socket.client, '{{{');
    await garbage.waitForEnd();
    expect(codes({ errors: garbage.failure.value as never })).toEqual(['TRUSTED_DOCUMENT_REQUIRED/document_text']);

    const results: unknown[] = [];
    let unknownErrors: unknown;
    socket.client.subscribe({ query: '', extensions: byHash(UNKNOWN_HASH) }, { next: () => undefined, error: (error) => (unknownErrors = error), complete: () => undefined });
    socket.client.subscribe(
      { query: '', operationName: 'PriceUpdated', variables: { hotelId: 'h1' }, extensions: byHash(PRICE_HASH) },
      { next: (value) => void results.push(value), error: (error) => results.push(error), complete: () => undefined },
    );
    await waitUntil(() => unknownErrors !== undefined, 'the unknown hash to be refused');
    expect(codes({ errors: unknownErrors as never })).toEqual(['TRUSTED_DOCUMENT_NOT_FOUND/']);

    const service = connectWs(gateway.wsUrl, await tokenFor('pricing', ['service']));
    const own = record(service.client, UNTRUSTED);
    await gateway.waitForSubscribers(topics.hotelPrices('h1'), 2);
    await gateway.publish(PUBLISH_PRICE, priceInput('h1', 15_000));
    await waitUntil(() => results.length === 1, 'the price by hash');
    expect(results[0]).toMatchObject({ data: { priceUpdated: { hotelId: 'h1', price: { amountMinor: 15_000 } } } });
    await own.waitForResults(1);
    expect(own.results[0]).toMatchObject({ data: { priceUpdated: { hotelId: 'h1' } } });
    expect(await refusals(gateway)).toEqual({ 'websocket/document_text': 2, 'websocket/unknown_hash': 1 });
  });

  it('SSE: a user sending a document is refused inside the stream; by hash the subscription is delivered', async () => {
    const gateway = await startGateway({ TRUSTED_DOCUMENTS: MANIFEST });
    const user = await tokenFor('pat');
    const untrusted = sseSubscribe(gateway, user, { query: UNTRUSTED });
    const unknown = sseSubscribe(gateway, user, { query: '', extensions: byHash(UNKNOWN_HASH) });
    const trusted = sseSubscribe(gateway, user, { query: '', variables: { hotelId: 'h2' }, extensions: byHash(PRICE_HASH) });
    await waitUntil(() => untrusted.ended() && unknown.ended(), 'both refusals');
    expect(untrusted.results.map(codes)).toEqual([['TRUSTED_DOCUMENT_REQUIRED/document_text']]);
    expect(unknown.results.map(codes)).toEqual([['TRUSTED_DOCUMENT_NOT_FOUND/']]);
    await gateway.waitForSubscribers(topics.hotelPrices('h2'));
    await gateway.publish(PUBLISH_PRICE, priceInput('h2', 9_900));
    await waitUntil(() => trusted.results.length === 1, 'the price over SSE');
    expect(trusted.results[0]).toMatchObject({ data: { priceUpdated: { hotelId: 'h2', price: { amountMinor: 9_900 } } } });
    expect(await refusals(gateway)).toEqual({ 'sse/document_text': 1, 'sse/unknown_hash': 1 });
  });

  it('off by default: texts run on every transport, nothing is refused, and connection_ack does not ask for hashes', async () => {
    const gateway = await startGateway();
    const user = await tokenFor('pat');
    expect((await post(gateway, { query: 'query { viewer { id } }' }, user)).body).toEqual({ data: { viewer: { id: 'pat' } } });
    let ackPayload: unknown = 'not connected';
    const socket = connectWs(gateway.wsUrl, user);
    socket.client.on('connected', (_socket, payload) => (ackPayload = payload));
    const text = record(socket.client, UNTRUSTED);
    const sse = sseSubscribe(gateway, user, { query: UNTRUSTED });
    await gateway.waitForSubscribers(topics.hotelPrices('h1'), 2);
    await gateway.publish(PUBLISH_PRICE, priceInput('h1'));
    await text.waitForResults(1);
    await waitUntil(() => sse.results.length === 1, 'the SSE result');
    expect(ackPayload).toEqual({ refreshSession: true });
    expect(await refusals(gateway)).toEqual({});
  });

  it('refuses to start on a manifest it cannot trust, listing every problem', () => {
    const directory = mkdtempSync(join(tmpdir(), 'tidings-manifest-'));
    const write = (name: string, content: string) => {
      const path = join(directory, name);
      writeFileSync(path, content);
      return path;
    };
    const text = 'query A { viewer { id } }';
    const tampered = write('tampered.json', JSON.stringify({ [PRICE_HASH]: text, [`sha256:${'A'.repeat(64)}`]: text, 'sha256:abc': text }));
    const two = write('two.json', JSON.stringify({ [hashOf(ViewerQuery)]: 'x' }));
    const notJson = write('broken.json', '{"sha256:');
    const empty = write('empty.json', '{}');
    let error: unknown;
    try {
      testConfig({ TRUSTED_DOCUMENTS: [tampered, two, notJson, empty, join(directory, 'missing.json')].join(',') });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toContain(`${tampered}: ${PRICE_HASH}: is not the SHA-256 of its document`);
    expect(problems).toContain(`${tampered}: sha256:${'A'.repeat(64)}: a key must be "sha256:" and 64 lowercase hex digits`);
    expect(problems).toContain(`${tampered}: sha256:abc: a key must be`);
    expect(problems).toContain(`${two}: ${hashOf(ViewerQuery)}: is not the SHA-256`);
    expect(problems).toContain(`${notJson}: not JSON`);
    expect(problems).toContain(`${empty}: holds no documents`);
    expect(problems).toContain('missing.json: cannot be read (ENOENT)');
    // A manifest of several documents that are not one operation each.
    const sha256 = (value: string) => `sha256:${createHash('sha256').update(value).digest('hex')}`;
    const double = 'query A { viewer { id } } query B { viewer { id } }';
    const twoOperations = write('double.json', JSON.stringify({ [sha256(double)]: double }));
    expect(() => testConfig({ TRUSTED_DOCUMENTS: twoOperations })).toThrow(/holds 2 operations, not one/);
    // The generated manifest is accepted, with every client operation in it.
    expect(testConfig({ TRUSTED_DOCUMENTS: MANIFEST }).trustedDocuments?.documents.get(PRICE_HASH)).toContain('subscription PriceUpdated');
  });
});

describe('@tidings/client and trusted documents', () => {
  /** A WebSocket that never gets through (a proxy that blocks upgrades): HTTP and SSE only. */
  class BlockedWebSocket extends WebSocket {
    constructor(_url: string, protocols?: string | string[]) {
      super('ws://127.0.0.1:1/', protocols);
    }
  }

  function client(gateway: TestGateway, token: string, extra: Partial<TidingsClientOptions> = {}) {
    const bodies: Array<Record<string, unknown>> = [];
    const tidings = createTidingsClient({
      url: gateway.httpUrl,
      getToken: () => token,
      webSocketImpl: WebSocket,
      backoff: { initialDelayMs: 20, maxDelayMs: 100 },
      fetch: async (input, init) => {
        if (typeof init?.body === 'string') bodies.push(JSON.parse(init.body) as Record<string, unknown>);
        return fetch(input, init);
      },
      ...extra,
    });
    onTestFinished(() => tidings.dispose());
    return { tidings, bodies };
  }

  const sentAs = (body: Record<string, unknown>) => (typeof body['query'] === 'string' ? 'text' : (body['extensions'] as { persistedQuery?: unknown } | undefined)?.persistedQuery ? 'hash' : 'neither');

  it('learns from connection_ack: subscriptions and queries go by hash at once', async () => {
    const gateway = await startGateway({ TRUSTED_DOCUMENTS: MANIFEST });
    const { tidings, bodies } = client(gateway, await tokenFor('pat'));
    await waitUntil(() => tidings.connection.get().status === 'live', 'live');
    const prices: unknown[] = [];
    const subscription = tidings.urql.subscription(PriceUpdatedSubscription, { hotelId: 'h3' }).subscribe((result) => prices.push(result.data ?? result.error));
    onTestFinished(() => subscription.unsubscribe());
    await gateway.waitForSubscribers(topics.hotelPrices('h3'));
    await gateway.publish(PUBLISH_PRICE, priceInput('h3', 20_000));
    await waitUntil(() => prices.length === 1, 'the price');
    expect(prices[0]).toMatchObject({ priceUpdated: { hotelId: 'h3', price: { amountMinor: 20_000 } } });
    const viewer = await tidings.urql.query(ViewerQuery, {}).toPromise();
    expect(viewer.data?.viewer.id).toBe('pat');
    expect(bodies.map(sentAs)).toEqual(['hash']);
    expect(await refusals(gateway)).toEqual({});
  });

  it('without a WebSocket (HTTP and SSE): a refused text is sent again by hash, once, and later operations go by hash', async () => {
    const gateway = await startGateway({ TRUSTED_DOCUMENTS: MANIFEST });
    const { tidings, bodies } = client(gateway, await tokenFor('pat'), { webSocketImpl: BlockedWebSocket, fallbackAfterFailures: 1 });
    // A mutation: refused before it ran, so sending it again is safe.
    const session = await tidings.urql.mutation(StartChatSessionMutation, {}).toPromise();
    expect(session.error).toBeUndefined();
    expect(session.data?.startChatSession.id).toEqual(expect.any(String));
    expect(bodies.map(sentAs)).toEqual(['text', 'hash']);
    expect((await tidings.urql.query(ViewerQuery, {}).toPromise()).data?.viewer.id).toBe('pat');
    expect(bodies.map(sentAs)).toEqual(['text', 'hash', 'hash']);

    await waitUntil(() => tidings.connection.get().transport === 'sse', 'the SSE fallback');
    const prices: unknown[] = [];
    const subscription = tidings.urql.subscription(PriceUpdatedSubscription, { hotelId: 'h4' }).subscribe((result) => prices.push(result.data ?? result.error));
    onTestFinished(() => subscription.unsubscribe());
    await gateway.waitForSubscribers(topics.hotelPrices('h4'));
    await gateway.publish(PUBLISH_PRICE, priceInput('h4', 30_000));
    await waitUntil(() => prices.length === 1, 'the price over SSE');
    expect(prices[0]).toMatchObject({ priceUpdated: { hotelId: 'h4', price: { amountMinor: 30_000 } } });
    expect(await refusals(gateway)).toEqual({ 'http/document_text': 1 });
  });

  it('a client that has not learned yet sends a subscription again by hash when the WebSocket refuses its text', async () => {
    const gateway = await startGateway({ TRUSTED_DOCUMENTS: MANIFEST });
    // Subscribed before the socket is acknowledged: its first subscribe carries the text.
    const { tidings } = client(gateway, await tokenFor('pat'));
    const prices: unknown[] = [];
    const subscription = tidings.urql.subscription(PriceUpdatedSubscription, { hotelId: 'h5' }).subscribe((result) => prices.push(result.data ?? result.error));
    onTestFinished(() => subscription.unsubscribe());
    await gateway.waitForSubscribers(topics.hotelPrices('h5'));
    await gateway.publish(PUBLISH_PRICE, priceInput('h5', 40_000));
    await waitUntil(() => prices.length === 1, 'the price');
    expect(prices[0]).toMatchObject({ priceUpdated: { hotelId: 'h5' } });
    // At most the one refusal the retry answered (none when the ack came first).
    expect(Object.values(await refusals(gateway)).reduce((sum, count) => sum + count, 0)).toBeLessThanOrEqual(1);
  });

  it("'never' sends text (the refusal reaches the application), and 'auto' against a gateway without trusted documents sends text only", async () => {
    const strict = await startGateway({ TRUSTED_DOCUMENTS: MANIFEST });
    const never = client(strict, await tokenFor('pat'), { trustedDocuments: 'never', webSocketImpl: BlockedWebSocket, sseFallback: false });
    const refused = await never.tidings.urql.query(ViewerQuery, {}).toPromise();
    expect(refused.error?.graphQLErrors.map((error) => error.extensions['code'])).toEqual(['TRUSTED_DOCUMENT_REQUIRED']);
    expect(never.bodies.map(sentAs)).toEqual(['text']);

    const open = await startGateway();
    const auto = client(open, await tokenFor('pat'));
    await waitUntil(() => auto.tidings.connection.get().status === 'live', 'live');
    expect((await auto.tidings.urql.query(ViewerQuery, {}).toPromise()).data?.viewer.id).toBe('pat');
    expect((await auto.tidings.urql.mutation(StartChatSessionMutation, {}).toPromise()).error).toBeUndefined();
    expect(auto.bodies.map(sentAs)).toEqual(['text', 'text']);
  });
});
