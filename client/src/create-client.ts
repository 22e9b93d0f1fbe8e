import { cacheExchange, Client, fetchExchange, stringifyDocument, subscriptionExchange, type ExecutionResult } from '@urql/core';
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { backoffDelayMs, type BackoffOptions } from './backoff.js';
import { ConnectionStateStore, type ConnectionState, type TransportKind } from './connection-state.js';
import { LoggedOutError } from './errors.js';
import { RefreshSessionMutation } from './operations.js';
import { persistedQueryExtension, trustedDocumentsExchange, TrustedDocumentsPolicy, type TrustedDocumentsMode } from './trusted-documents.js';

/** Returns the current access token. Called on every (re)connect and request, so refresh here. */
export type TokenProvider = () => string | Promise<string>;

export interface TidingsClientOptions {
  /** The gateway's GraphQL endpoint, e.g. `https://realtime.example.com/graphql`. */
  readonly url: string;
  /** Throw LoggedOutError to stop the client; any other error is retried like a network failure. */
  readonly getToken: TokenProvider;
  /** A WebSocket implementation where there is no global one (Node: the `ws` package). */
  readonly webSocketImpl?: unknown;
  /** A fetch implementation; defaults to the global one. */
  readonly fetch?: typeof fetch;
  /** Reconnect delays (exponential with full jitter). */
  readonly backoff?: BackoffOptions;
  /** How long `reconnecting` may last before the state says `offline` (retries go on). @default 3_000 */
  readonly offlineAfterMs?: number;
  /** Fall back to SSE when WebSockets fail while the gateway answers HTTP. @default true */
  readonly sseFallback?: boolean;
  /** Consecutive failed WebSocket connection attempts before checking for the fallback. @default 2 */
  readonly fallbackAfterFailures?: number;
  /** While on SSE, how often to try WebSockets again. @default 30_000 */
  readonly webSocketProbeIntervalMs?: number;
  /** graphql-ws client keep-alive pings. @default 10_000 */
  readonly keepAliveMs?: number;
  /**
   * Send generated documents by hash: `auto` when the gateway asks (it runs TRUSTED_DOCUMENTS),
   * `always`, or `never`. @default 'auto'
   */
  readonly trustedDocuments?: TrustedDocumentsMode;
}

export interface TidingsClient {
  /** The urql client: pass it to urql's Provider, or call query/mutation/subscription on it. */
  readonly urql: Client;
  /** Connection status and transport for the UI. */
  readonly connection: ConnectionStateStore;
  /** Reconnect now (for example right after login, to use the new token). */
  reconnect(): void;
  dispose(): void;
}

interface ActiveOperation {
  readonly request: { query: string; variables?: Record<string, unknown>; operationName?: string };
  /** The typed document (it may carry its hash, for trusted documents). */
  readonly document: unknown;
  /** Whether the last start sent it by hash. */
  sentHash: boolean;
  readonly observer: { next(value: ExecutionResult): void; error(error: unknown): void; complete(): void };
  /** Bumped on every transport switch; callbacks of older generations are ignored. */
  generation: number;
  stop: () => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Disposing a graphql-ws client mid-connect rejects with the connection's error: expected, so ignored. */
const disposeQuietly = (client: { dispose(): void | Promise<void> } | undefined) => {
  void Promise.resolve()
    .then(() => client?.dispose())
    .catch(() => undefined);
};

/**
 * One factory for frontends: an urql client whose queries and mutations go over HTTP and whose
 * subscriptions go over WebSocket (graphql-ws), with reconnects, a fresh token on every connect,
 * an SSE fallback when WebSockets are blocked, and a connection state a UI can show.
 */
export function createTidingsClient(options: TidingsClientOptions): TidingsClient {
  const {
    offlineAfterMs = 3_000,
    sseFallback = true,
    fallbackAfterFailures = 2,
    webSocketProbeIntervalMs = 30_000,
    keepAliveMs = 10_000,
  } = options;
  const trustedDocuments = new TrustedDocumentsPolicy(options.trustedDocuments ?? 'auto');
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const webSocketUrl = options.url.replace(/^http/, 'ws');
  const healthUrl = new URL('/health', options.url).href;
  const connection = new ConnectionStateStore();
  const operations = new Set<ActiveOperation>();

  let transport: TransportKind = 'websocket';
  let everLive = false;
  let loggedOut = false;
  let disposed = false;
  let offlineTimer: ReturnType<typeof setTimeout> | undefined;
  let probeTimer: ReturnType<typeof setInterval> | undefined;
  let consecutiveWsFailures = 0;
  let webSocketGeneration = 0;

  const token = async (): Promise<string> => {
    try {
      return await options.getToken();
    } catch (error) {
      if (error instanceof LoggedOutError) {
        loggedOut = true;
        clearTimeout(offlineTimer);
        connection.update({ status: 'offline', transport, reason: 'logged-out' });
      }
      throw error;
    }
  };

  const markLive = (kind: TransportKind) => {
    clearTimeout(offlineTimer);
    offlineTimer = undefined;
    everLive = true;
    connection.update({ status: 'live', transport: kind });
  };

  /** Connection lost or not yet made: reconnecting now, offline if it lasts. */
  const markDown = (kind: TransportKind) => {
    if (disposed || loggedOut) return;
    const current = connection.get();
    if (current.status !== 'offline') connection.update({ status: everLive ? 'reconnecting' : 'connecting', transport: kind });
    offlineTimer ??= setTimeout(() => {
      offlineTimer = undefined;
      if (!disposed && !loggedOut && connection.get().status !== 'live') {
        connection.update({ status: 'offline', transport, reason: 'unreachable' });
      }
    }, offlineAfterMs);
  };

  const gatewayAnswersHttp = () =>
    fetchImpl(healthUrl).then(
      (response) => response.ok,
      () => false,
    );

  // --- WebSocket -----------------------------------------------------------------------------

  const createWebSocketClient = (options_: { replacing?: WsClient } = {}): WsClient => {
    let reachedAck = false;
    // A replacement (the token is about to expire) connects alongside the old connection and
    // takes the subscriptions over once acknowledged, so the UI never shows a reconnect.
    let replacing = options_.replacing;
    // Events of a client that has been replaced (fallback to SSE) must not touch the state.
    const generation = ++webSocketGeneration;
    const isCurrent = () => generation === webSocketGeneration && transport === 'websocket';
    // The gateway's connection_ack says whether it takes a fresh token in place (refreshSession).
    let refreshesInPlace = false;
    let refreshing = false;
    const client = createWsClient({
      url: webSocketUrl,
      webSocketImpl: options.webSocketImpl,
      lazy: false,
      keepAlive: keepAliveMs,
      retryAttempts: Number.POSITIVE_INFINITY,
      shouldRetry: () => !loggedOut && !disposed,
      retryWait: (retries) => sleep(backoffDelayMs(retries, options.backoff)),
      connectionParams: async () => ({ authorization: `Bearer ${await token()}` }),
      onNonLazyError: () => {
        if (!loggedOut && !disposed && isCurrent()) connection.update({ status: 'offline', transport: 'websocket', reason: 'fatal' });
      },
      on: {
        connecting: () => {
          reachedAck = false;
          if (isCurrent() && !replacing) markDown('websocket');
        },
        connected: (_socket, payload) => {
          reachedAck = true;
          const ack = payload as Record<string, unknown> | undefined;
          if (ack?.['trustedDocuments'] === true) trustedDocuments.gatewayAsks();
          refreshesInPlace = ack?.['refreshSession'] === true;
          consecutiveWsFailures = 0;
          if (replacing && isCurrent()) {
            const previous = replacing;
            replacing = undefined;
            moveOperations();
            disposeQuietly(previous);
          }
          if (isCurrent()) markLive('websocket');
        },
        ping: (received, payload) => {
          // The gateway warns before the token expires: hand it a fresh token on this connection,
          // or (an older gateway, or a refused refresh) connect again with one first.
          if (!received || payload?.['reason'] !== 'token_expiring' || !isCurrent() || replacing || refreshing) return;
          if (!refreshesInPlace) return replaceWebSocket();
          refreshing = true;
          void refreshInPlace(client).then((refreshed) => {
            refreshing = false;
            if (!refreshed && isCurrent() && !replacing) replaceWebSocket();
          });
        },
        closed: () => {
          if (disposed || loggedOut || !isCurrent()) return;
          // A replacement that has not taken over yet retries quietly; the old connection still serves.
          if (replacing) return;
          consecutiveWsFailures = reachedAck ? 0 : consecutiveWsFailures + 1;
          markDown('websocket');
          if (sseFallback && consecutiveWsFailures >= fallbackAfterFailures) void fallBackIfHttpWorks();
        },
      },
    });
    return client;
  };

  /**
   * refreshSession over the connection itself: true when the gateway took the fresh token (every
   * subscription stays as it is), false when it refused it (another user, other roles, a token
   * that does not verify) or the connection failed meanwhile.
   */
  const refreshInPlace = async (client: WsClient): Promise<boolean> => {
    let fresh: string;
    try {
      fresh = await token();
    } catch {
      return false;
    }
    if (disposed || loggedOut) return true;
    const hash = trustedDocuments.sendsHashes ? trustedDocuments.hashOf(RefreshSessionMutation) : undefined;
    const request = {
      query: hash === undefined ? stringifyDocument(RefreshSessionMutation) : '',
      operationName: 'RefreshSession',
      variables: { token: fresh },
      ...(hash === undefined ? {} : { extensions: persistedQueryExtension(hash) }),
    };
    return new Promise<boolean>((resolve) => {
      let accepted = false;
      client.subscribe(request, {
        next: (result) => {
          accepted = !result.errors?.length && result.data != null;
        },
        error: () => resolve(false),
        complete: () => resolve(accepted),
      });
    });
  };

  // --- SSE -------------------------------------------------------------------------------------

  const createSseTransport = (): SseClient =>
    createSseClient({
      url: options.url,
      singleConnection: false,
      fetchFn: fetchImpl,
      headers: async () => ({ authorization: `Bearer ${await token()}` }),
      retryAttempts: Number.POSITIVE_INFINITY,
      retry: (retries) => sleep(backoffDelayMs(retries, options.backoff)),
    });

  let webSocketClient: WsClient | undefined = createWebSocketClient();

  const replaceWebSocket = () => {
    if (disposed || loggedOut || transport !== 'websocket' || !webSocketClient) return;
    webSocketClient = createWebSocketClient({ replacing: webSocketClient });
  };
  let sseClient: SseClient | undefined;

  /** The gateway refused the text and asked for the hash: start again by hash (once; see retriesWithHash). */
  const retriedWithHash = (operation: ActiveOperation, errors: unknown): boolean => {
    if (!Array.isArray(errors) || !trustedDocuments.retriesWithHash(errors, operation.document, operation.sentHash)) return false;
    restart(operation);
    return true;
  };

  const start = (operation: ActiveOperation) => {
    const generation = operation.generation;
    const current = () => operation.generation === generation;
    const sink = {
      // Over SSE a refusal is a result with errors (and no data) in the stream.
      next: (value: ExecutionResult) => current() && !(value.data == null && retriedWithHash(operation, value.errors)) && operation.observer.next(value),
      error: (error: unknown) => current() && !retriedWithHash(operation, error) && operation.observer.error(error),
      complete: () => current() && operation.observer.complete(),
    };
    const hash = trustedDocuments.sendsHashes ? trustedDocuments.hashOf(operation.document) : undefined;
    operation.sentHash = hash !== undefined;
    // graphql-ws requires `query` to be a string: by hash, it is empty.
    const request = hash === undefined ? operation.request : { ...operation.request, query: '', extensions: persistedQueryExtension(hash) };
    if (transport === 'websocket' && webSocketClient) {
      operation.stop = webSocketClient.subscribe(request, sink as never);
    } else if (sseClient) {
      operation.stop = sseClient.subscribe(request, sink as never, {
        connecting: (reconnecting) => reconnecting && markDown('sse'),
        connected: () => markLive('sse'),
      });
    }
  };

  const restart = (operation: ActiveOperation) => {
    operation.generation += 1;
    operation.stop();
    start(operation);
  };

  const moveOperations = () => {
    for (const operation of operations) restart(operation);
  };

  const fallBackIfHttpWorks = async () => {
    if (transport !== 'websocket' || !(await gatewayAnswersHttp()) || disposed || loggedOut || transport !== 'websocket') return;
    // The failures may have been an outage that just ended (the gateway restarted): fall back only
    // if WebSockets still fail now that HTTP gets through.
    if (await webSocketReachable()) return;
    if (disposed || loggedOut || transport !== 'websocket') return;
    // The gateway is up but WebSockets do not get through (a proxy, a firewall): use SSE.
    transport = 'sse';
    webSocketGeneration += 1;
    const failedWebSocket = webSocketClient;
    webSocketClient = undefined;
    sseClient = createSseTransport();
    // Move the operations first, so the failed client's disposal reaches no live sink.
    moveOperations();
    disposeQuietly(failedWebSocket);
    if (operations.size === 0) markLive('sse');
    probeTimer = setInterval(() => void probeWebSocket(), webSocketProbeIntervalMs);
  };

  /** One WebSocket connection attempt with the current token: does it reach connection_ack? */
  const webSocketReachable = async () => {
    let probe: WsClient | undefined;
    const reachable = await new Promise<boolean>((resolve) => {
      const timeout = setTimeout(() => resolve(false), 5_000);
      const decide = (value: boolean) => {
        clearTimeout(timeout);
        resolve(value);
      };
      probe = createWsClient({
        url: webSocketUrl,
        webSocketImpl: options.webSocketImpl,
        lazy: false,
        retryAttempts: 0,
        connectionParams: async () => ({ authorization: `Bearer ${await token()}` }),
        onNonLazyError: () => decide(false),
        on: { connected: () => decide(true), closed: () => decide(false) },
      });
    });
    disposeQuietly(probe);
    return reachable;
  };

  /** While on SSE: one WebSocket attempt; on success, move everything back to WebSocket. */
  const probeWebSocket = async () => {
    const reachable = await webSocketReachable();
    if (!reachable || disposed || transport !== 'sse') return;
    clearInterval(probeTimer);
    transport = 'websocket';
    webSocketClient = createWebSocketClient();
    const previousSse = sseClient;
    sseClient = undefined;
    moveOperations();
    disposeQuietly(previousSse);
  };

  const urql = new Client({
    url: options.url,
    preferGetMethod: false,
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${await token()}`);
      return fetchImpl(input, { ...init, headers });
    },
    exchanges: [
      cacheExchange,
      trustedDocumentsExchange(trustedDocuments),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request, urqlOperation) => ({
          subscribe: (observer) => {
            const operation: ActiveOperation = {
              request: { query: request.query ?? '', variables: request.variables as Record<string, unknown>, operationName: request.operationName },
              document: urqlOperation.query,
              sentHash: false,
              observer: observer as ActiveOperation['observer'],
              generation: 0,
              stop: () => undefined,
            };
            operations.add(operation);
            start(operation);
            return {
              unsubscribe: () => {
                operations.delete(operation);
                operation.generation += 1;
                operation.stop();
              },
            };
          },
        }),
      }),
    ],
  });

  return {
    urql,
    connection,
    reconnect() {
      webSocketClient?.terminate();
    },
    dispose() {
      disposed = true;
      clearTimeout(offlineTimer);
      clearInterval(probeTimer);
      for (const operation of operations) operation.stop();
      operations.clear();
      disposeQuietly(webSocketClient);
      disposeQuietly(sseClient);
      connection.update({ status: 'offline', transport, reason: 'disposed' });
    },
  };
}

export type { ConnectionState };
