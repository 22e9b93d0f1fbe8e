import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError } from 'graphql';
import { CloseCode, handleProtocols, makeServer, type SubscribePayload } from 'graphql-ws';
import type { YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Authenticator } from '../auth/authenticator.js';
import { bearerFromConnectionParams } from '../auth/credentials.js';
import type { Principal } from '../auth/principal.js';
import { TokenRejectedError } from '../auth/token-verifier.js';
import { limitExceeded } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { prepareOperation, type PreparedOperation } from '../server/prepare-operation.js';
import { atExpiry } from '../auth/expiry.js';

/** Close code for a client that kept flooding after RATE_LIMITED errors (documented in docs/ERRORS.md). */
export const RATE_LIMIT_CLOSE_CODE = 4290;

/** What each graphql-ws connection carries besides the protocol state. */
export interface SocketExtra {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
  readonly connectionId: string;
  /** Times (ms) of this connection's recent rate-limited operations. */
  readonly rateLimitStrikes: number[];
  principal?: Principal;
  /** Cancels the close scheduled for the token's expiry. */
  cancelExpiry?: () => void;
}

export interface WebSocketTransportOptions {
  readonly path: string;
  readonly keepAliveMs: number;
  readonly connectionInitTimeoutMs: number;
  readonly maxPayloadBytes: number;
  /** Tokens are accepted this long past `exp`; connections are closed this long after it. */
  readonly clockToleranceMs: number;
  /** Operations one connection may have open at once. */
  readonly maxSubscriptionsPerConnection: number;
  /** A connection refused this many operations by the rate limiter within the window is closed (4290). */
  readonly rateLimitStrikes: { readonly windowMs: number; readonly disconnectAfter: number };
}

export interface WebSocketTransport {
  connectionCount(): number;
  /**
   * Closes every socket with 1001 so clients reconnect elsewhere; sockets that have not finished
   * the close handshake within `graceMs` are terminated.
   */
  close(graceMs: number): Promise<void>;
}

/**
 * graphql-ws over `ws`, as a thin adapter around graphql-ws' I/O-free `makeServer`. Every
 * operation is built through `yoga.getEnveloped` (prepareOperation), so WebSocket operations get
 * the same context, plugins, validation rules and error masking as HTTP and SSE.
 */
export function attachWebSocketTransport(deps: {
  httpServer: HttpServer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  yoga: YogaServerInstance<any, any>;
  authenticator: Authenticator;
  logger: Logger;
  metrics: GatewayMetrics;
  options: WebSocketTransportOptions;
}): WebSocketTransport {
  const { yoga, authenticator, logger, options } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes, handleProtocols });

  const protocolServer = makeServer<Record<string, unknown> | undefined, SocketExtra>({
    connectionInitWaitTimeout: options.connectionInitTimeoutMs,

    onConnect: async (ctx) => {
      const { extra } = ctx;
      try {
        const principal = await authenticator.authenticate(bearerFromConnectionParams(ctx.connectionParams));
        // Closed while we were verifying: arm nothing (a timer would outlive the socket).
        if (extra.socket.readyState !== extra.socket.OPEN) return false;
        extra.principal = principal;
        if (principal.kind === 'user' && principal.expiresAt !== undefined) {
          // The connection lives only as long as its token: the client reconnects with a fresh one.
          extra.cancelExpiry = atExpiry(principal.expiresAt + options.clockToleranceMs, () => {
            logger.info({ connectionId: extra.connectionId }, 'websocket token expired; closing');
            extra.socket.close(CloseCode.Forbidden, 'Unauthenticated: Token has expired');
          });
        }
        logger.debug({ connectionId: extra.connectionId, userId: userIdForLog(principal) }, 'websocket authenticated');
        return true;
      } catch (error) {
        if (!(error instanceof TokenRejectedError)) throw error;
        logger.info({ connectionId: extra.connectionId, reason: error.reason }, 'websocket authentication refused');
        // Close ourselves to give the reason; graphql-ws' own close after `false` is then a no-op.
        extra.socket.close(CloseCode.Forbidden, `Unauthenticated: ${error.message}`.slice(0, 120));
        return false;
      }
    },

    onSubscribe: async (ctx, id, payload: SubscribePayload) => {
      // graphql-ws has already registered this operation in ctx.subscriptions by now.
      if (Object.keys(ctx.subscriptions).length > options.maxSubscriptionsPerConnection) {
        logger.info({ connectionId: ctx.extra.connectionId, operationId: id }, 'subscription limit per connection reached');
        return [limitExceeded(`At most ${options.maxSubscriptionsPerConnection} operations may be open on one connection`, 'subscriptions_per_connection')];
      }
      try {
        const prepared = await prepareOperation(
          yoga,
          {
            request: undefined,
            socket: ctx.extra.socket,
            connectionParams: ctx.connectionParams,
            principal: ctx.extra.principal,
            connectionId: ctx.extra.connectionId,
            operationId: id,
            clientAddress: ctx.extra.request.socket.remoteAddress,
            onRateLimited: () => strike(ctx.extra),
          },
          payload,
        );
        if (!prepared.ok) return prepared.errors;
        // graphql-ws picks execute or subscribe by operation type; both go through Yoga's envelop.
        return { ...prepared.args, rootValue: prepared };
      } catch (error) {
        logger.error({ err: error, connectionId: ctx.extra.connectionId, operationId: id }, 'subscribe failed');
        return [new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })];
      }
    },
    execute: (args) => (args.rootValue as PreparedOperation & { ok: true }).run() as never,
    subscribe: (args) => (args.rootValue as PreparedOperation & { ok: true }).run() as never,
  });
  /** A client that keeps flooding after being told to slow down is disconnected with 4290. */
  const strike = (extra: SocketExtra) => {
    const now = Date.now();
    const strikes = extra.rateLimitStrikes;
    strikes.push(now);
    while ((strikes[0] ?? now) <= now - options.rateLimitStrikes.windowMs) strikes.shift();
    if (strikes.length >= options.rateLimitStrikes.disconnectAfter && extra.socket.readyState === extra.socket.OPEN) {
      logger.info({ connectionId: extra.connectionId }, 'closing a connection that kept exceeding its rate limit');
      deps.metrics.limitTrips.inc({ limit: 'rate_disconnect' });
      extra.socket.close(RATE_LIMIT_CLOSE_CODE, 'Too many requests');
    }
  };

  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    const connectionId = randomUUID();
    const extra: SocketExtra = { socket, request, connectionId, rateLimitStrikes: [] };
    logger.debug({ connectionId }, 'websocket opened');

    socket.once('error', (error) => {
      // Includes frames over maxPayload (ws closes with 1009 itself) and protocol violations.
      logger.info({ connectionId, err: error }, 'websocket error');
    });

    // Keep-alive: ping every keepAliveMs; a peer that has not answered by the next ping is dead.
    let alive = true;
    socket.on('pong', () => {
      alive = true;
    });
    const pinger = setInterval(() => {
      if (!alive) {
        logger.debug({ connectionId }, 'websocket missed keep-alive; terminating');
        socket.terminate();
        return;
      }
      alive = false;
      socket.ping();
    }, options.keepAliveMs);
    pinger.unref();

    const closed = protocolServer.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            socket.send(data, (error) => (error ? reject(error) : resolve()));
          }),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', async (data, isBinary) => {
            try {
              if (isBinary) {
                socket.close(CloseCode.BadRequest, 'Binary frames are not supported');
                return;
              }
              await handle(data.toString());
            } catch (error) {
              logger.error({ err: error, connectionId }, 'websocket message handling failed');
              socket.close(CloseCode.InternalServerError, 'Internal server error');
            }
          }),
      },
      extra,
    );

    socket.once('close', (code, reason) => {
      clearInterval(pinger);
      extra.cancelExpiry?.();
      logger.debug({ connectionId, code }, 'websocket closed');
      void closed(code, reason.toString());
    });
  });

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (pathname !== options.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (webSocket) => wss.emit('connection', webSocket, request));
  };
  deps.httpServer.on('upgrade', onUpgrade);

  return {
    connectionCount: () => wss.clients.size,
    async close(graceMs) {
      deps.httpServer.off('upgrade', onUpgrade);
      for (const client of wss.clients) client.close(1001, 'Server shutting down; reconnect');
      const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
      const graceOver = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([closed, graceOver]);
      // A peer that never answers the close frame must not hold shutdown hostage.
      for (const client of wss.clients) client.terminate();
      await closed;
    },
  };
}

function userIdForLog(principal: Principal | undefined): string | undefined {
  return principal?.kind === 'user' ? principal.userId : undefined;
}
