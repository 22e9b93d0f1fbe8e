import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { PRICE_UPDATED, priceInput, PUBLISH_PRICE, VIEWER } from './support/operations.js';
import { counterValue } from './support/metrics.js';
import { connectWs, record } from './support/ws-client.js';

const INTROSPECTION = '{ __schema { types { name } } }';

describe('size and shape limits', () => {
  it('refuses an HTTP body over HTTP_MAX_BODY_BYTES with 413, declared or chunked, and serves others', async () => {
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: '2048' });
    const token = await tokenFor('alice');
    const big = JSON.stringify({ query: VIEWER, variables: { padding: 'x'.repeat(4_000) } });
    const declared = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: big,
    });
    expect(declared.status).toBe(413);
    expect(await declared.text()).toContain('PAYLOAD_TOO_LARGE');

    const chunkedStatus = await new Promise<number>((resolve, reject) => {
      const url = new URL(gateway.httpUrl);
      const outgoing = request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', authorization: `Bearer ${token}` } },
        (response) => resolve(response.statusCode ?? 0),
      );
      outgoing.on('error', reject);
      for (let index = 0; index < 8; index++) outgoing.write(big.slice(index * 600, (index + 1) * 600));
      outgoing.end();
    });
    expect(chunkedStatus).toBe(413);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'http_body_bytes' })).toBe(2);

    const small = await gateway.http(VIEWER, {}, token);
    expect(small.body.data?.['viewer']).toMatchObject({ id: 'alice' });
  });

  it('turns introspection off on every transport when INTROSPECTION=false', async () => {
    const gateway = await startGateway({ INTROSPECTION: 'false' });
    const token = await tokenFor('alice');
    const http = await gateway.http(INTROSPECTION, {}, token);
    expect(http.body.errors?.[0]?.extensions?.['code']).toBe('GRAPHQL_VALIDATION_FAILED');
    const { client } = connectWs(gateway.wsUrl, token);
    const overSocket = record(client, INTROSPECTION);
    await overSocket.waitForEnd();
    expect(JSON.stringify(overSocket.failure.value)).toContain('introspection');
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'introspection' })).toBe(2);
    const viewer = await gateway.http(VIEWER, {}, token);
    expect(viewer.body.data?.['viewer']).toMatchObject({ id: 'alice' });
  });

  it('allows introspection only when chosen (INTROSPECTION=true), never because NODE_ENV is unset', async () => {
    const token = await tokenFor('alice');
    const chosen = await startGateway({ INTROSPECTION: 'true' });
    expect((await chosen.http(INTROSPECTION, {}, token)).body.errors).toBeUndefined();
    const unset = await startGateway({ NODE_ENV: '' });
    expect(JSON.stringify((await unset.http(INTROSPECTION, {}, token)).body.errors)).toContain('introspection has been disabled');
  });
});

describe('quotas', () => {
  it('refuses operations over WS_MAX_SUBSCRIPTIONS_PER_CONNECTION with LIMIT_EXCEEDED; the others keep flowing', async () => {
    const gateway = await startGateway({ WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: '3' });
    const { client, closes } = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const allowed = ['h1', 'h2', 'h3'].map((hotelId) => record(client, PRICE_UPDATED, { hotelId }));
    for (const hotelId of ['h1', 'h2', 'h3']) await gateway.waitForSubscribers(topics.hotelPrices(hotelId));
    const refused = record(client, PRICE_UPDATED, { hotelId: 'h4' });
    await refused.waitForEnd();
    expect(JSON.stringify(refused.failure.value)).toContain('LIMIT_EXCEEDED');
    expect(gateway.app.services.bus.subscriberCount(topics.hotelPrices('h4'))).toBe(0);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'subscriptions_per_connection' })).toBe(1);

    await gateway.publish(PUBLISH_PRICE, priceInput('h2'));
    await allowed[1]?.waitForResults(1);
    // Freeing a slot lets a new one in.
    allowed[0]?.unsubscribe();
    const again = record(client, PRICE_UPDATED, { hotelId: 'h5' });
    await gateway.waitForSubscribers(topics.hotelPrices('h5'));
    expect(again.isComplete()).toBe(false);
    expect(closes).toHaveLength(0);
  });
});

describe('query shape limits (graphql-armor) on HTTP and WebSocket', () => {
  const deep = `subscription { priceUpdated(hotelId: "h") { price { amount } previousPrice { amount } } }`;
  const aliased = `query { ${Array.from({ length: 6 }, (_, index) => `a${index}: viewer { id }`).join(' ')} }`;
  const directives = `query { viewer @include(if: true) @include(if: true) @include(if: true) @include(if: true) { id } }`;
  const manyTokens = `query { viewer { ${Array.from({ length: 300 }, () => 'id').join(' ')} } }`;
  const costly = `query { ${Array.from({ length: 5 }, (_, index) => `v${index}: viewer { id roles anonymous tokenExpiresAt }`).join(' ')} }`;

  it.each([
    ['depth', deep, { QUERY_MAX_DEPTH: '2' }, 'query_depth'],
    ['aliases', aliased, { QUERY_MAX_ALIASES: '5' }, 'query_aliases'],
    ['directives', directives, { QUERY_MAX_DIRECTIVES: '3' }, 'query_directives'],
    ['tokens', manyTokens, { QUERY_MAX_TOKENS: '200' }, 'query_tokens'],
    ['cost', costly, { QUERY_MAX_COST: '10', QUERY_MAX_ALIASES: '100' }, 'query_cost'],
  ])('refuses an operation over the %s limit on both transports and counts it', async (_limit, query, env, metric) => {
    const gateway = await startGateway(env);
    const token = await tokenFor('alice');
    const http = await gateway.http(query, {}, token);
    expect(http.body.errors?.length).toBeGreaterThan(0);
    expect(http.body.data ?? null).toBeNull();

    const { client, closes } = connectWs(gateway.wsUrl, token);
    // Shallow and cheap, so it stays within every tightened limit.
    const bystander = record(client, 'subscription($h: ID!) { priceUpdated(hotelId: $h) { id } }', { h: 'hotel-ok' });
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-ok'));
    const overSocket = record(client, query);
    await overSocket.waitForEnd();
    expect(overSocket.failure.value ?? overSocket.results[0]?.errors).toBeTruthy();
    expect(JSON.stringify(overSocket.results.map((r) => r.data))).not.toContain('"id"');

    const trips = (await gateway.app.metrics.limitTrips.get()).values.find((value) => value.labels.limit === metric)?.value ?? 0;
    expect(trips).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(overSocket.failure.value ?? overSocket.results)).not.toContain('"http"');
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-ok'));
    await bystander.waitForResults(1);
    expect(closes).toHaveLength(0);
  });

  it('lets ordinary operations through with the default limits', async () => {
    const gateway = await startGateway();
    const { body } = await gateway.http(VIEWER, {}, await tokenFor('alice'));
    expect(body.errors).toBeUndefined();
  });
});
