import { createClient as createSseClient } from 'graphql-sse';
import { describe, expect, it, onTestFinished } from 'vitest';
import { topics } from '../src/events/topics.js';
import { addressQuotaKey } from '../src/protection/address-key.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { PRICE_UPDATED, priceInput, PUBLISH_PRICE } from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record, type Recording } from './support/ws-client.js';

async function tripsOf(gateway: TestGateway, limit: string): Promise<number> {
  return (await gateway.app.metrics.limitTrips.get()).values.find((value) => value.labels.limit === limit)?.value ?? 0;
}

/** An anonymous socket with one price subscription; resolves once it is acknowledged or closed. */
async function anonymousOn(gateway: TestGateway, hotelId: string) {
  const connection = connectWs(gateway.wsUrl);
  const prices = record(connection.client, PRICE_UPDATED, { hotelId });
  await waitUntil(() => connection.closes.length > 0 || gateway.app.services.bus.subscriberCount(topics.hotelPrices(hotelId)) > 0, 'an answer');
  return { ...connection, prices };
}

function limitOf(recording: Recording): unknown {
  const fromResult = recording.results[0]?.errors?.[0]?.extensions?.['limit'];
  if (fromResult) return fromResult;
  const failure = recording.failure.value as Array<{ extensions?: Record<string, unknown> }> | undefined;
  return Array.isArray(failure) ? failure[0]?.extensions?.['limit'] : undefined;
}

describe('addressQuotaKey', () => {
  it('counts IPv4 addresses alone, IPv6 ones by their /64, and IPv4-mapped ones as IPv4', () => {
    expect(addressQuotaKey('203.0.113.7')).toBe('203.0.113.7');
    expect(addressQuotaKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressQuotaKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressQuotaKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressQuotaKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(addressQuotaKey('unknown')).toBe('unknown');
    expect(addressQuotaKey(undefined)).toBe('unknown');
  });
});

describe('anonymous connections per address across instances (Redis)', () => {
  it('closes an anonymous connection over ANONYMOUS_MAX_CONNECTIONS_PER_ADDRESS with 4291 on any instance; users are not counted; a closed one frees a unit', async () => {
    const env = { ...(await backendEnv('redis')), ALLOW_ANONYMOUS: 'true', ANONYMOUS_MAX_CONNECTIONS_PER_ADDRESS: '2' };
    const a = await startGateway({ ...env, INSTANCE_ID: 'a' });
    const b = await startGateway({ ...env, INSTANCE_ID: 'b' });
    const first = await anonymousOn(a, 'p1');
    const second = await anonymousOn(b, 'p2');
    expect([first.closes, second.closes]).toEqual([[], []]);

    const third = await anonymousOn(a, 'p3');
    expect((await third.waitForClose()).code).toBe(4291);
    expect(third.closes[0]?.reason).toContain('per address');
    expect(await tripsOf(a, 'connections_per_address')).toBe(1);
    // A user from the same address is not an anonymous caller.
    const user = connectWs(a.wsUrl, await tokenFor('alice'));
    record(user.client, PRICE_UPDATED, { hotelId: 'p4' });
    await user.waitForConnected();

    await second.client.dispose();
    await waitUntil(() => b.app.webSockets.connectionCount() === 0, 'instance b to see the close');
    const fourth = await anonymousOn(a, 'p5');
    expect(fourth.closes).toEqual([]);
    await a.publish(PUBLISH_PRICE, priceInput('p5'));
    await fourth.prices.waitForResults(1);
  });
});

describe.each(BACKENDS)('anonymous limits (%s)', (backend) => {
  it('caps anonymous connections per instance at ANONYMOUS_MAX_CONNECTIONS, whatever their address', async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), ALLOW_ANONYMOUS: 'true', ANONYMOUS_MAX_CONNECTIONS: '2' });
    const held = [await anonymousOn(gateway, 'q1'), await anonymousOn(gateway, 'q2')];
    const refused = await anonymousOn(gateway, 'q3');
    expect((await refused.waitForClose()).code).toBe(4291);
    expect(refused.closes[0]?.reason).toContain('anonymous ones on this instance');
    expect(await tripsOf(gateway, 'anonymous_connections')).toBe(1);
    // Users are not under the anonymous cap.
    const user = connectWs(gateway.wsUrl, await tokenFor('bob'));
    record(user.client, PRICE_UPDATED, { hotelId: 'q4' });
    await user.waitForConnected();
    expect(held.map((connection) => connection.closes)).toEqual([[], []]);

    await held[0]?.client.dispose();
    await waitUntil(() => gateway.app.webSockets.connectionCount() === 2, 'the server to see the close');
    const accepted = await anonymousOn(gateway, 'q5');
    expect(accepted.closes).toEqual([]);
  });

  it('refuses an anonymous subscription over ANONYMOUS_MAX_SUBSCRIPTIONS_PER_ADDRESS across sockets and SSE with LIMIT_EXCEEDED; ending one frees a unit', async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), ALLOW_ANONYMOUS: 'true', ANONYMOUS_MAX_SUBSCRIPTIONS_PER_ADDRESS: '3' });
    const one = connectWs(gateway.wsUrl);
    const two = connectWs(gateway.wsUrl);
    const held = [record(one.client, PRICE_UPDATED, { hotelId: 's1' }), record(two.client, PRICE_UPDATED, { hotelId: 's2' })];
    await gateway.waitForSubscribers(topics.hotelPrices('s1'));
    await gateway.waitForSubscribers(topics.hotelPrices('s2'));
    const sse = createSseClient({ url: gateway.httpUrl, retryAttempts: 0 });
    onTestFinished(() => sse.dispose());
    const stopSse = sse.subscribe({ query: PRICE_UPDATED, variables: { hotelId: 's3' } }, { next: () => undefined, error: () => undefined, complete: () => undefined });
    await gateway.waitForSubscribers(topics.hotelPrices('s3'));

    const refused = record(one.client, PRICE_UPDATED, { hotelId: 's4' });
    await refused.waitForEnd();
    expect(limitOf(refused)).toBe('subscriptions_per_address');
    expect(await tripsOf(gateway, 'subscriptions_per_address')).toBe(1);
    // An SSE subscription is refused too (its error arrives in the stream).
    const sseRefused: unknown[] = [];
    await new Promise<void>((resolve) => {
      sse.subscribe({ query: PRICE_UPDATED, variables: { hotelId: 's5' } }, { next: (value) => void sseRefused.push(value), error: () => resolve(), complete: () => resolve() });
    });
    expect(JSON.stringify(sseRefused)).toContain('subscriptions_per_address');

    await gateway.publish(PUBLISH_PRICE, priceInput('s1'));
    await held[0]?.waitForResults(1);
    stopSse();
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.hotelPrices('s3')) === 0, 'the SSE subscription to end');
    const accepted = record(two.client, PRICE_UPDATED, { hotelId: 's6' });
    await gateway.waitForSubscribers(topics.hotelPrices('s6'));
    await gateway.publish(PUBLISH_PRICE, priceInput('s6'));
    await accepted.waitForResults(1);
  });
});
