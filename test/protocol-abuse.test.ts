import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { PRICE_UPDATED, priceInput, PUBLISH_PRICE } from './support/operations.js';
import { openRawSocket } from './support/raw-socket.js';
import { counterValue } from './support/metrics.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * graphql-ws protocol discipline: every offender gets its documented close code, and a
 * well-behaved client on the same instance keeps receiving throughout.
 */
async function withBystander(env: Record<string, string> = {}) {
  const gateway = await startGateway(env);
  const bystander = connectWs(gateway.wsUrl, await tokenFor('bystander'));
  const prices = record(bystander.client, PRICE_UPDATED, { hotelId: 'hotel-b' });
  await gateway.waitForSubscribers(topics.hotelPrices('hotel-b'));
  let sent = 0;
  return {
    gateway,
    /** The server counted the close under its code (tidings_websocket_closes_total). */
    async closeCounted(code: number) {
      await waitUntil(async () => (await counterValue(gateway.app, 'websocketCloses', { code: String(code) })) === 1, `a counted ${code} close`);
    },
    /** Publishes one more event and checks the bystander got every event so far, in order. */
    async bystanderStillReceives() {
      sent += 1;
      await gateway.publish(PUBLISH_PRICE, priceInput('hotel-b', sent));
      await prices.waitForResults(sent);
      expect(prices.results.map((r) => (r.data?.['priceUpdated'] as { price: { amountMinor: number } }).price.amountMinor)).toEqual(
        Array.from({ length: sent }, (_, index) => index + 1),
      );
      expect(bystander.closes).toHaveLength(0);
    },
  };
}

const token = () => tokenFor('offender');

describe('graphql-ws protocol discipline', () => {
  it('closes with 4408 when connection_init does not arrive in time', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander({ WS_CONNECTION_INIT_TIMEOUT_MS: '300' });
    const raw = await openRawSocket(gateway.wsUrl);
    expect(await raw.waitForClose()).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
    await closeCounted(4408);
    await bystanderStillReceives();
  });

  it('closes with 4429 on a second connection_init', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander();
    const raw = await openRawSocket(gateway.wsUrl);
    await raw.init(await token());
    raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${await token()}` } });
    expect(await raw.waitForClose()).toEqual({ code: 4429, reason: 'Too many initialisation requests' });
    await closeCounted(4429);
    await bystanderStillReceives();
  });

  it('closes with 4401 on subscribe before connection_ack', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander();
    const raw = await openRawSocket(gateway.wsUrl);
    raw.send({ id: '1', type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId: 'hotel-b' } } });
    expect(await raw.waitForClose()).toEqual({ code: 4401, reason: 'Unauthorized' });
    await closeCounted(4401);
    await bystanderStillReceives();
  });

  it('closes with 4409 when an operation id is reused while active', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander();
    const raw = await openRawSocket(gateway.wsUrl);
    await raw.init(await token());
    const subscribe = { id: 'same', type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId: 'hotel-x' } } };
    raw.send(subscribe);
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-x'));
    raw.send(subscribe);
    expect((await raw.waitForClose()).code).toBe(4409);
    await closeCounted(4409);
    await bystanderStillReceives();
  });

  it.each([
    ['malformed JSON', (raw: Awaited<ReturnType<typeof openRawSocket>>) => raw.sendRaw('{"type": "connection_init", ')],
    ['an unknown message type', (raw: Awaited<ReturnType<typeof openRawSocket>>) => raw.send({ type: 'gimme_everything' })],
    ['a non-object connection_init payload', (raw: Awaited<ReturnType<typeof openRawSocket>>) => raw.send({ type: 'connection_init', payload: 'admin' })],
    ['a subscribe without a query', (raw: Awaited<ReturnType<typeof openRawSocket>>) => raw.send({ id: '1', type: 'subscribe', payload: {} })],
    ['a binary frame', (raw: Awaited<ReturnType<typeof openRawSocket>>) => raw.sendRaw(Buffer.from([1, 2, 3]), { binary: true })],
  ])('closes with 4400 on %s', async (_case, offend) => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander();
    const raw = await openRawSocket(gateway.wsUrl);
    if (!_case.includes('connection_init') && !_case.includes('JSON')) await raw.init(await token());
    offend(raw);
    expect((await raw.waitForClose()).code).toBe(4400);
    await closeCounted(4400);
    await bystanderStillReceives();
  });

  it('closes with 1007 on invalid UTF-8 in a text frame', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander();
    const raw = await openRawSocket(gateway.wsUrl);
    await raw.init(await token());
    // Write a text frame with invalid UTF-8 directly, bypassing the client's own encoding.
    const payload = Buffer.from([0xc3, 0x28]);
    const mask = Buffer.from([1, 2, 3, 4]);
    const masked = Buffer.from(payload.map((byte, index) => byte ^ (mask[index % 4] as number)));
    const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
    (raw.socket as unknown as { _socket: { write(data: Buffer): void } })._socket.write(frame);
    expect((await raw.waitForClose()).code).toBe(1007);
    await closeCounted(1007);
    await bystanderStillReceives();
  });

  it('closes with 1009 on a message over WS_MAX_PAYLOAD_BYTES, without buffering it', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander({ WS_MAX_PAYLOAD_BYTES: '4096' });
    const raw = await openRawSocket(gateway.wsUrl);
    await raw.init(await token());
    raw.send({ id: '1', type: 'subscribe', payload: { query: `query { viewer { id } } # ${'x'.repeat(10_000)}` } });
    expect((await raw.waitForClose()).code).toBe(1009);
    await closeCounted(1009);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'ws_message_bytes' })).toBe(1);
    await bystanderStillReceives();
  });

  it('refuses unsupported subprotocols: no protocol gets 4406, the legacy one fails the handshake', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander();
    const none = await openRawSocket(gateway.wsUrl, []);
    expect(await none.waitForClose()).toEqual({ code: 4406, reason: 'Subprotocol not acceptable' });
    await closeCounted(4406);
    await expect(openRawSocket(gateway.wsUrl, 'graphql-ws')).rejects.toThrow(/no subprotocol/);
    await bystanderStillReceives();
  });

  it('answers an upgrade request with an unparsable target with 400, and keeps serving', async () => {
    const { gateway, bystanderStillReceives } = await withBystander();
    const { port } = new URL(gateway.httpUrl);
    for (const target of ['http://[', 'http://a:99999/graphql', '//[/x']) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
        });
        let received = '';
        socket.on('data', (chunk) => (received += chunk.toString()));
        socket.on('close', () => resolve(received));
        socket.on('error', reject);
      });
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    }
    await bystanderStillReceives();
  });

  it('terminates a peer that stops answering keep-alive pings', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander({ WS_KEEP_ALIVE_MS: '200' });
    const raw = await openRawSocket(gateway.wsUrl);
    await raw.init(await token());
    (raw.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    await waitForConnections(gateway, 1);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'keepalive_timeout' })).toBe(1);
    await closeCounted(1006);
    await bystanderStillReceives();
  });

  it('answers an unknown operation name and wrong variable types with errors, keeping the socket', async () => {
    const { gateway, bystanderStillReceives, closeCounted } = await withBystander();
    const raw = await openRawSocket(gateway.wsUrl);
    await raw.init(await token());
    raw.send({ id: 'a', type: 'subscribe', payload: { query: PRICE_UPDATED, operationName: 'Nope', variables: { hotelId: 'h' } } });
    raw.send({ id: 'b', type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId: 42.5 } } });
    raw.send({ id: 'c', type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId: 'x'.repeat(1_000_000 / 8) } } });
    const byId = async (id: string) => raw.waitForMessage((message) => message['id'] === id && (message['type'] === 'error' || message['type'] === 'next'));
    expect(JSON.stringify(await byId('a'))).toMatch(/Unable to identify operation|Unknown operation named/);
    expect(JSON.stringify(await byId('b'))).toContain('Variable');
    expect(JSON.stringify(await byId('c'))).toContain('BAD_USER_INPUT');
    raw.send({ id: 'd', type: 'subscribe', payload: { query: 'query { viewer { id } }' } });
    expect(JSON.stringify(await byId('d'))).toContain('"offender"');
    await bystanderStillReceives();
  });
});

async function waitForConnections(gateway: TestGateway, count: number): Promise<void> {
  const { waitUntil } = await import('./support/wait.js');
  await waitUntil(() => gateway.app.webSockets.connectionCount() === count, `${count} open WebSocket(s)`);
}
