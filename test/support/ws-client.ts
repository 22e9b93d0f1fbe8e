import { createClient, type Client, type FormattedExecutionResult as ExecutionResult } from 'graphql-ws';
import { onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { waitUntil } from './wait.js';

export interface ClosedEvent {
  readonly code: number;
  readonly reason: string;
}

export interface TestWsClient {
  readonly client: Client;
  /** Close events seen by the client, in order. */
  readonly closes: ClosedEvent[];
  /** Payloads of the server's protocol pings (e.g. the token expiry warning), in order. */
  readonly pings: Array<Record<string, unknown> | undefined>;
  waitForClose(): Promise<ClosedEvent>;
  /** Resolves once connection_ack has arrived (the connection is lazy: subscribe first). */
  waitForConnected(): Promise<void>;
}

/** A real graphql-ws client (no retries), disposed when the test ends. */
export function connectWs(url: string, token?: string, connectionParams?: Record<string, unknown>): TestWsClient {
  const closes: ClosedEvent[] = [];
  const pings: Array<Record<string, unknown> | undefined> = [];
  let connected = false;
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: connectionParams ?? (token ? { authorization: `Bearer ${token}` } : undefined),
    retryAttempts: 0,
    lazy: true,
    on: {
      connected: () => {
        connected = true;
      },
      ping: (received, payload) => {
        if (received) pings.push(payload);
      },
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        closes.push({ code, reason: String(reason) });
      },
    },
  });
  onTestFinished(() => client.dispose());
  return {
    client,
    closes,
    pings,
    waitForConnected: () => waitUntil(() => connected, 'connection_ack'),
    async waitForClose() {
      await waitUntil(() => closes.length > 0, 'the socket to close');
      return closes[0] as ClosedEvent;
    },
  };
}

export interface Recording<T = Record<string, unknown>> {
  readonly results: ExecutionResult<T, unknown>[];
  /** Set when the operation ended with a protocol `error` message or a socket failure. */
  readonly failure: { value: unknown };
  isComplete(): boolean;
  waitForResults(count: number): Promise<ExecutionResult<T, unknown>[]>;
  /** Resolves when the server completes the operation or it fails. */
  waitForEnd(): Promise<void>;
  unsubscribe(): void;
}

/** Subscribes and records everything that arrives. */
export function record<T = Record<string, unknown>>(
  client: Client,
  query: string,
  variables?: Record<string, unknown>,
): Recording<T> {
  const results: ExecutionResult<T, unknown>[] = [];
  const failure: { value: unknown } = { value: undefined };
  let ended = false;
  const unsubscribe = client.subscribe<T>(
    { query, variables },
    {
      next: (result) => results.push(result),
      error: (error) => {
        failure.value = error ?? 'error';
        ended = true;
      },
      complete: () => {
        ended = true;
      },
    },
  );
  return {
    results,
    failure,
    isComplete: () => ended,
    async waitForResults(count) {
      await waitUntil(() => results.length >= count, `${count} result(s) for ${query.slice(0, 60)}`);
      return results;
    },
    waitForEnd: () => waitUntil(() => ended, `the end of ${query.slice(0, 60)}`),
    unsubscribe,
  };
}
