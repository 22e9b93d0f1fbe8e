import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient as createSseClient } from 'graphql-sse';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startGateway, tokenFor } from './support/gateway.js';
import { counterValue } from './support/metrics.js';
import { PRICE_UPDATED } from './support/operations.js';
import { openRawSocket } from './support/raw-socket.js';
import { connectWs, record } from './support/ws-client.js';

const TYPENAME = '{ __typename }';
const codeOf = (result: { errors?: ReadonlyArray<{ extensions?: Record<string, unknown> }> } | undefined) => result?.errors?.[0]?.extensions?.['code'];

describe('every operation counts against the rate limit', () => {
  it('refuses queries over RATE_LIMIT_OPERATIONS on HTTP, WebSocket and SSE alike: one budget per user', async () => {
    const gateway = await startGateway({ RATE_LIMIT_OPERATIONS: '3' });
    const token = await tokenFor('alice');
    expect((await gateway.http(TYPENAME, {}, token)).status).toBe(200);
    const socket = connectWs(gateway.wsUrl, token);
    const overSocket = record(socket.client, TYPENAME);
    await overSocket.waitForEnd();
    expect(overSocket.results[0]?.data).toEqual({ __typename: 'Query' });
    // The third unit over SSE (a query on the event stream), then every transport is refused.
    const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    onTestFinished(() => sse.dispose());
    const overSse = async () => {
      const values: unknown[] = [];
      await new Promise<void>((resolve) =>
        sse.subscribe({ query: TYPENAME }, { next: (value) => void values.push(value), error: (error) => (values.push(error), resolve()), complete: () => resolve() }),
      );
      return values[0] as { data?: unknown; errors?: Array<{ extensions?: Record<string, unknown> }> };
    };
    expect((await overSse()).data).toEqual({ __typename: 'Query' });

    const refusedHttp = await gateway.http(TYPENAME, {}, token);
    expect(refusedHttp.status).toBe(429);
    expect(codeOf(refusedHttp.body)).toBe('RATE_LIMITED');
    const refusedSocket = record(socket.client, TYPENAME);
    await refusedSocket.waitForEnd();
    expect(codeOf(refusedSocket.results[0])).toBe('RATE_LIMITED');
    // Refused before a stream starts: an HTTP 429 whose event stream carries the error.
    const sseRefusal = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: TYPENAME }),
    });
    expect(sseRefusal.status).toBe(429);
    expect(await sseRefusal.text()).toContain('"code":"RATE_LIMITED"');
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'rate_operations' })).toBe(3);
    // Another user has a budget of their own.
    expect((await gateway.http(TYPENAME, {}, await tokenFor('bob'))).body.data).toEqual({ __typename: 'Query' });
  });

  it('closes a WebSocket that keeps sending queries after RATE_LIMITED with 4290', async () => {
    const gateway = await startGateway({ RATE_LIMIT_OPERATIONS: '2', RATE_LIMIT_DISCONNECT_AFTER: '3' });
    const socket = await openRawSocket(gateway.wsUrl);
    await socket.init(await tokenFor('alice'));
    for (let index = 0; index < 6; index++) socket.send({ id: `q${index}`, type: 'subscribe', payload: { query: TYPENAME } });
    expect((await socket.waitForClose()).code).toBe(4290);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'rate_disconnect' })).toBe(1);
  });
});

describe('messages per WebSocket connection', () => {
  it('closes a client that sends messages of any kind faster than WS_MAX_MESSAGES_PER_SECOND allows with 4290', async () => {
    const gateway = await startGateway({ WS_MAX_MESSAGES_PER_SECOND: '5', WS_MESSAGE_BURST: '10' });
    const bystander = connectWs(gateway.wsUrl, await tokenFor('bob'));
    const prices = record(bystander.client, PRICE_UPDATED, { hotelId: 'h1' });
    const socket = await openRawSocket(gateway.wsUrl);
    await socket.init(await tokenFor('alice'));
    // Pings and completes: answered or ignored by the protocol, and still counted.
    for (let index = 0; index < 12; index++) socket.send(index % 2 === 0 ? { type: 'ping' } : { id: `x${index}`, type: 'complete' });
    const closed = await socket.waitForClose();
    expect(closed).toEqual({ code: 4290, reason: 'Too many messages: at most 5 per second' });
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'ws_messages' })).toBe(1);
    expect(prices.failure.value).toBeUndefined();
    expect(bystander.closes).toEqual([]);
  });

  it('lets a client that stays within the rate send as long as it likes', async () => {
    const gateway = await startGateway({ WS_MAX_MESSAGES_PER_SECOND: '20', WS_MESSAGE_BURST: '5' });
    const socket = await openRawSocket(gateway.wsUrl);
    await socket.init(await tokenFor('alice'));
    // 30 pings at 10 a second: over the burst in all, never faster than the refill.
    for (let index = 0; index < 30; index++) {
      socket.send({ type: 'ping' });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await socket.waitForMessage((message) => message['type'] === 'pong' && socket.messages.filter((other) => other['type'] === 'pong').length === 30);
    expect(socket.socket.readyState).toBe(socket.socket.OPEN);
  });
});

describe('a flood from one client', () => {
  it("keeps another client's p99 round trip under 100 ms while one client floods queries as fast as it can", async () => {
    const gateway = await startGateway();
    const flooder = spawn(process.execPath, [fileURLToPath(new URL('./support/flooder.mjs', import.meta.url))], {
      env: { ...process.env, URL: gateway.wsUrl, TOKEN: await tokenFor('mallory'), DURATION_MS: '3000', MAX_CONNECTIONS: '2000' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    onTestFinished(() => void flooder.kill());
    let output = '';
    flooder.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const flooderDone = new Promise<void>((resolve) => flooder.on('exit', () => resolve()));

    // The other client: one query at a time over its own socket, for as long as the flood lasts.
    const probe = connectWs(gateway.wsUrl, await tokenFor('bob'));
    // An open subscription keeps the (lazy) client's socket: every round trip is a query on it.
    record(probe.client, PRICE_UPDATED, { hotelId: 'h1' });
    const query = () =>
      new Promise<void>((resolve, reject) => {
        probe.client.subscribe({ query: TYPENAME }, { next: () => undefined, error: reject, complete: resolve });
      });
    await query();
    const roundTrips: number[] = [];
    let flooding = true;
    void flooderDone.then(() => (flooding = false));
    while (flooding && roundTrips.length < 200) {
      const started = performance.now();
      await query();
      roundTrips.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    await flooderDone;
    const stats = JSON.parse(output) as { sent: number; results: number; connections: number; closes: Record<string, number> };

    roundTrips.sort((a, b) => a - b);
    const p99 = roundTrips[Math.ceil(roundTrips.length * 0.99) - 1] as number;
    expect(roundTrips.length).toBeGreaterThan(50);
    expect(p99).toBeLessThan(100);
    // The flood was refused, not served: closed for its rate each time, answered a little.
    expect(stats.closes['4290']).toBeGreaterThan(0);
    expect(stats.results).toBeLessThan(stats.sent / 10);
    expect(probe.closes).toEqual([]);
  }, 30_000);
});
