import type { Client } from 'graphql-ws';
import { describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { PRICE_UPDATED, priceInput, PUBLISH_PRICE, VIEWER } from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * refreshSession: a connection takes a fresh token without reconnecting. The same user with the
 * same roles: the token is replaced (its expiry and warning follow the new one) and every
 * subscription is kept; anything else is refused with a code and changes nothing.
 */
const REFRESH = 'mutation Refresh($token: String!) { refreshSession(token: $token) { userId roles tokenExpiresAt } }';

type Result = { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };

function run(client: Client, query: string, variables?: Record<string, unknown>): Promise<Result> {
  return new Promise((resolve, reject) => {
    let last: Result | undefined;
    client.subscribe(
      { query, variables },
      { next: (value) => void (last = value as Result), error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))), complete: () => resolve(last as Result) },
    );
  });
}

const codeOf = (result: Result) => [result.errors?.[0]?.extensions?.['code'], result.errors?.[0]?.extensions?.['reason']];

async function subscribedUser(gateway: TestGateway, expiresInSeconds: number, hotelId: string) {
  const socket = connectWs(gateway.wsUrl, await tokenFor('alice', ['user', 'host'], { expiresInSeconds }));
  const prices = record<{ priceUpdated: { price: { amountMinor: number } } }>(socket.client, PRICE_UPDATED, { hotelId });
  await gateway.waitForSubscribers(topics.hotelPrices(hotelId));
  return { socket, prices };
}

describe('refreshSession over WebSocket', () => {
  it('replaces the token in place: subscriptions kept, no close at the old expiry, the warning and the close follow the new token', async () => {
    const gateway = await startGateway({ TOKEN_EXPIRY_WARNING_SECONDS: '1' });
    // Tokens carry whole seconds: the first one expires 3-4 s from now, its warning a second earlier.
    const { socket, prices } = await subscribedUser(gateway, 4, 'r1');
    const [connection] = gateway.app.webSockets.connections();
    const expiryOf = (result: Result, field: string) => Date.parse((result.data?.[field] as { tokenExpiresAt: string }).tokenExpiresAt);
    const oldExpiry = expiryOf(await run(socket.client, VIEWER), 'viewer');

    const fresh = await tokenFor('alice', ['host', 'user'], { expiresInSeconds: 7 });
    const refreshed = await run(socket.client, REFRESH, { token: fresh });
    expect(refreshed.errors).toBeUndefined();
    expect(refreshed.data?.['refreshSession']).toEqual({ userId: 'alice', roles: expect.arrayContaining(['USER', 'HOST']), tokenExpiresAt: expect.any(String) });
    const newExpiry = expiryOf(refreshed, 'refreshSession');
    expect(newExpiry).toBeGreaterThan(oldExpiry);
    expect(expiryOf(await run(socket.client, VIEWER), 'viewer')).toBe(newExpiry);

    // Past the first token's expiry (no tolerance in tests): the same connection, still delivering.
    await new Promise((resolve) => setTimeout(resolve, oldExpiry - Date.now() + 300));
    expect(socket.closes).toEqual([]);
    expect(gateway.app.webSockets.connections().map((open) => open.connectionId)).toEqual([connection?.connectionId]);
    await gateway.publish(PUBLISH_PRICE, priceInput('r1', 777));
    await prices.waitForResults(1);
    expect(prices.results[0]?.data?.priceUpdated.price.amountMinor).toBe(777);

    // The warning is re-armed for the new token (a second before it expires), then the close.
    const forNewToken = () => socket.pings.find((ping) => ping?.['reason'] === 'token_expiring' && Date.parse(String(ping['expiresAt'])) === newExpiry);
    await waitUntil(() => forNewToken() !== undefined, 'the warning for the new token', 6_000);
    expect(socket.closes).toEqual([]);
    const closed = await socket.waitForClose();
    expect(closed).toEqual({ code: 4403, reason: 'Unauthenticated: Token has expired' });
    expect(Date.now()).toBeGreaterThanOrEqual(newExpiry);
  }, 20_000);

  it('refuses a token of another user, one with other roles, one that does not verify, and from an anonymous connection, changing nothing', async () => {
    const gateway = await startGateway({ ALLOW_ANONYMOUS: 'true' });
    const { socket, prices } = await subscribedUser(gateway, 2, 'r2');
    const before = await run(socket.client, VIEWER);

    const refusals = [
      await run(socket.client, REFRESH, { token: await tokenFor('mallory', ['user', 'host'], { expiresInSeconds: 3600 }) }),
      await run(socket.client, REFRESH, { token: await tokenFor('alice', ['user', 'host', 'admin'], { expiresInSeconds: 3600 }) }),
      await run(socket.client, REFRESH, { token: await tokenFor('alice', ['user'], { expiresInSeconds: 3600 }) }),
      await run(socket.client, REFRESH, { token: await tokenFor('alice', ['user', 'host'], { expiresInSeconds: 3600, secret: 'another-secret-0123456789-abcdefghijklmnopq' }) }),
      await run(socket.client, REFRESH, { token: 'not a token' }),
    ];
    expect(refusals.map(codeOf)).toEqual([
      ['FORBIDDEN', 'other_user'],
      ['FORBIDDEN', 'roles_changed'],
      ['FORBIDDEN', 'roles_changed'],
      ['UNAUTHENTICATED', 'bad_signature'],
      ['UNAUTHENTICATED', 'malformed'],
    ]);
    expect(refusals.every((refusal) => refusal.data === null)).toBe(true);
    // Still alice on her first token, still subscribed: and that token still ends the connection.
    expect(await run(socket.client, VIEWER)).toEqual(before);
    await gateway.publish(PUBLISH_PRICE, priceInput('r2', 5));
    await prices.waitForResults(1);
    expect((await socket.waitForClose()).code).toBe(4403);

    const anonymous = connectWs(gateway.wsUrl);
    expect(codeOf(await run(anonymous.client, REFRESH, { token: await tokenFor('alice', ['user', 'host']) }))[0]).toBe('UNAUTHENTICATED');
    expect((await run(anonymous.client, VIEWER)).data?.['viewer']).toMatchObject({ anonymous: true });
  }, 15_000);

  it('is BAD_REQUEST over HTTP, where each request carries its own token', async () => {
    const gateway = await startGateway();
    const token = await tokenFor('alice');
    const { status, body } = await gateway.http(REFRESH, { token }, token);
    expect([status, body.errors?.[0]?.extensions?.['code']]).toEqual([400, 'BAD_REQUEST']);
  });
});
