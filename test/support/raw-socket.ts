import { once } from 'node:events';
import { onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { waitUntil } from './wait.js';

/** A protocol-level graphql-ws peer for abuse tests: send anything, observe messages and the close. */
export interface RawSocket {
  readonly socket: WebSocket;
  readonly messages: Array<Record<string, unknown>>;
  send(message: unknown): void;
  sendRaw(data: string | Buffer, options?: { binary?: boolean }): void;
  /** Sends connection_init with the token and waits for connection_ack. */
  init(token: string): Promise<void>;
  waitForMessage(predicate: (message: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  waitForClose(timeoutMs?: number): Promise<{ code: number; reason: string }>;
}

export async function openRawSocket(url: string, protocol: string | string[] = 'graphql-transport-ws'): Promise<RawSocket> {
  const socket = new WebSocket(url, protocol);
  const messages: Array<Record<string, unknown>> = [];
  let closed: { code: number; reason: string } | undefined;
  socket.on('message', (data) => {
    try {
      messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
    } catch {
      messages.push({ unparsable: data.toString() });
    }
  });
  socket.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
  });
  onTestFinished(() => socket.terminate());
  await Promise.race([
    once(socket, 'open'),
    once(socket, 'error').then(([error]) => {
      throw error;
    }),
  ]);
  socket.on('error', () => undefined);
  const raw: RawSocket = {
    socket,
    messages,
    send: (message) => socket.send(JSON.stringify(message)),
    sendRaw: (data, options) => socket.send(data, { binary: options?.binary ?? false }),
    async init(token) {
      raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
      await raw.waitForMessage((message) => message['type'] === 'connection_ack');
    },
    async waitForMessage(predicate) {
      await waitUntil(() => messages.some(predicate), 'a matching message');
      return messages.find(predicate) as Record<string, unknown>;
    },
    async waitForClose(timeoutMs = 5_000) {
      await waitUntil(() => closed !== undefined, 'the socket to close', timeoutMs);
      return closed as { code: number; reason: string };
    },
  };
  return raw;
}
