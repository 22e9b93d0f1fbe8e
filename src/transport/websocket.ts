import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, type ExecutionResult } from 'graphql';
import { CloseCode, handleProtocols, type SubscribePayload } from 'graphql-ws';
import { isAsyncIterable, type YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Authenticator } from '../auth/authenticator.js';
import { bearerFromConnectionParams } from '../auth/credentials.js';
import { ANONYMOUS, type Principal } from '../auth/principal.js';
import type { VerifiedPrincipal } from '../auth/verified-tokens.js';
import { TokenRejectedError } from '../auth/token-verifier.js';
import { forbiddenBecause, forSocket, limitExceeded, unauthenticated } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { prepareOperation, type PreparedOperation } from '../server/prepare-operation.js';
import { resolveTrustedDocument } from '../server/trusted-documents.js';
import { addressQuotaKey } from '../protection/address-key.js';
import type { QuotaLease, UserQuotas } from '../protection/user-quotas.js';
import type { RevocationListener, SessionRevocations, SessionWatch } from '../sessions/session-revocations.js';
import { OutgoingQueue, type OutgoingQueueOptions } from './outgoing-queue.js';
import { KeepAliveSweep } from './keep-alive.js';
import { DeadlineQueue, type DeadlineSlot } from '../sessions/deadline-queue.js';
import type { DeliveryRules } from '../schema/delivery.js';
import { type ResultSink, type SharedDeliveries, type SharedMember, type TopicNaming } from './shared-delivery.js';
import { createTransportWsProtocol, nextFrame, pingFrame, type ProtocolConnection, type WsOperation } from './graphql-transport-ws.js';
import type { GraphQLContext, SessionRefresher } from '../schema/context.js';
import type { ClientAddressOf } from './client-address.js';
import type { Presence, PresenceEntry } from '../observability/presence.js';

/** Close codes of Tidings' own limits (documented in docs/ERRORS.md). */
export const CloseCodes = {
  /** The client kept sending operations after RATE_LIMITED errors, or sent messages faster than WS_MAX_MESSAGES_PER_SECOND. */
  RateLimited: 4290,
  /** The user already holds WS_MAX_CONNECTIONS_PER_USER connections (on any instance). */
  TooManyConnections: 4291,
  /** The client did not read its events: it stayed over WS_MAX_BUFFERED_BYTES. */
  SlowConsumer: 4292,
} as const;

/** A conflatable subscription of one connection: which root field its results carry. */
interface ConflatableOperation {
  readonly id: string;
  readonly field: string;
  /** Tells the operation from a newer one with the same id, and whether it is still open. */
  readonly owner: WsOperation;
}

/** What a subscribe message asks for (see `decide`). */
type Decision =
  | { readonly kind: 'errors'; readonly errors: readonly GraphQLError[] }
  | {
      readonly kind: 'operation';
      readonly prepared: PreparedOperation & { ok: true };
      /** Its context's `sharedDelivery`: plugins may have handed it what they hold (a subscription's quota unit). */
      readonly naming: TopicNaming;
    }
  | {
      readonly kind: 'shared';
      readonly member: SharedMember;
      readonly prepared: PreparedOperation & { ok: true };
      readonly context: GraphQLContext;
      /** Its context's `sharedDelivery`: what the resolver names, and what plugins hand over. */
      readonly naming: TopicNaming;
    };

export interface WebSocketTransportOptions {
  readonly path: string;
  readonly keepAliveMs: number;
  readonly connectionInitTimeoutMs: number;
  readonly maxPayloadBytes: number;
  /** Messages a client may send: a bucket of `messageBurst` refilled at this rate (4290 when empty). */
  readonly maxMessagesPerSecond: number;
  readonly messageBurst: number;
  /** Tokens are accepted this long past `exp`; connections are closed this long after it. */
  readonly clockToleranceMs: number;
  /** Operations one connection may have open at once. */
  readonly maxSubscriptionsPerConnection: number;
  /** A connection refused this many operations by the rate limiter within the window is closed (4290). */
  readonly rateLimitStrikes: { readonly windowMs: number; readonly disconnectAfter: number };
  /** WebSocket connections one user may hold across every instance (4291 above). */
  readonly maxConnectionsPerUser: number;
  /** Anonymous connections from one address (addressQuotaKey) across every instance (4291 above). */
  readonly maxAnonymousConnectionsPerAddress: number;
  /** Anonymous connections on this instance, from anywhere (4291 above). */
  readonly maxAnonymousConnections: number;
  /** Unsent bytes a socket may hold before it counts as behind; see OutgoingQueue. */
  readonly maxBufferedBytes: number;
  /** A socket behind for this long is closed (4292). */
  readonly slowConsumerGraceMs: number;
  /** The client gets a `ping` with payload `{ reason: 'token_expiring', expiresAt }` this long before expiry. */
  readonly tokenExpiryWarningMs: number;
  /**
   * TRUSTED_DOCUMENTS' manifests: subscribe messages run only these (by hash), except for
   * services; connection_ack says `{ trustedDocuments: true }` so clients send hashes at once.
   */
  readonly trustedDocuments?: ReadonlyMap<string, string> | undefined;
}

/** One open connection, as seen by operators and tests. */
export interface ConnectionSnapshot {
  readonly connectionId: string;
  readonly userId: string | undefined;
  /** Bytes held for it: unsent socket bytes plus conflated events waiting (see OutgoingQueue). */
  readonly heldBytes: number;
}

export interface WebSocketTransport {
  connectionCount(): number;
  connections(): ConnectionSnapshot[];
  /** Shared deliveries running: groups of subscriptions (WebSocket and SSE) served by one execution per event. */
  sharedGroupCount(): number;
  /** Subscriptions open in shared deliveries, over WebSocket and SSE. */
  sharedJoinedCount(): number;
  /**
   * Closes every socket with 1001 so clients reconnect elsewhere; sockets that have not finished
   * the close handshake within `graceMs` are terminated.
   */
  close(graceMs: number): Promise<void>;
}

/**
 * GraphQL over WebSocket (the graphql-transport-ws protocol, graphql-transport-ws.ts) on `ws`.
 * Every operation is built through `yoga.getEnveloped` (prepareOperation), so WebSocket
 * operations get the same context, plugins, validation rules and error masking as HTTP and SSE;
 * every subscription is delivered by a shared delivery (shared-delivery.ts), which writes its
 * results to the connection's outgoing queue.
 */
export function attachWebSocketTransport(deps: {
  httpServer: HttpServer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  yoga: YogaServerInstance<any, any>;
  authenticator: Authenticator;
  quotas: UserQuotas;
  revocations: SessionRevocations;
  clientAddressOf: ClientAddressOf;
  presence: Presence;
  sharedDeliveries: SharedDeliveries;
  /** Which subscription fields are shared and which conflate, as the schema declares them (deliveryRulesOf). */
  deliveryRules: DeliveryRules;
  logger: Logger;
  metrics: GatewayMetrics;
  options: WebSocketTransportOptions;
}): WebSocketTransport {
  const { yoga, authenticator, logger, metrics, options } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes, handleProtocols });

  const trustedDocuments = options.trustedDocuments;

  /** Verifies a token; a refusal (logged as `refused`, counted) is returned, never thrown. */
  const verify = async (state: ConnectionState, token: string | undefined, refused: string): Promise<Principal | TokenRejectedError> => {
    try {
      return await authenticator.authenticate(token);
    } catch (error) {
      if (!(error instanceof TokenRejectedError)) throw error;
      state.log.info({ reason: error.reason }, refused);
      metrics.authFailures.inc({ reason: error.reason, transport: 'websocket' });
      return error;
    }
  };
  const protocol = createTransportWsProtocol<ConnectionState>({
    // What clients may rely on: refreshSession in place of a new connection, and trusted documents.
    ackPayload: { refreshSession: true, ...(trustedDocuments ? { trustedDocuments: true } : {}) },
    connect: async (state, payload) => {
      const { socket, connectionId } = state;
      clearTimeout(state.initTimer);
      state.initTimer = undefined;
      // The init payload is read once, here, and not kept: it holds the token.
      const principal = await verify(state, bearerFromConnectionParams(payload), 'websocket authentication refused');
      if (principal instanceof TokenRejectedError) {
        closeSocket(state, CloseCode.Forbidden, `Unauthenticated: ${principal.message}`);
        return false;
      }
      if (principal.kind === 'user') {
        const lease = await deps.quotas.acquire('connections', principal.userId, options.maxConnectionsPerUser);
        if (!lease) {
          state.log.info({ userId: principal.userId }, 'connection limit per user reached');
          metrics.limitTrips.inc({ limit: 'connections_per_user' });
          closeSocket(state, CloseCodes.TooManyConnections, `Too many connections: at most ${options.maxConnectionsPerUser} per user`);
          return false;
        }
        state.connectionLease = lease;
      } else {
        // Anonymous: no user to count by, so by address across instances, and by instance in all
        // (one address, or many, must not open sockets until file descriptors run out).
        const slot = anonymousSlots.take();
        if (!slot) {
          state.log.info('anonymous connection limit of this instance reached');
          metrics.limitTrips.inc({ limit: 'anonymous_connections' });
          closeSocket(state, CloseCodes.TooManyConnections, `Too many connections: at most ${options.maxAnonymousConnections} anonymous ones on this instance`);
          return false;
        }
        state.instanceSlot = slot;
        const lease = await deps.quotas.acquire('address-connections', addressQuotaKey(state.clientAddress), options.maxAnonymousConnectionsPerAddress);
        if (!lease) {
          state.release();
          state.log.info({ clientAddress: state.clientAddress }, 'anonymous connection limit per address reached');
          metrics.limitTrips.inc({ limit: 'connections_per_address' });
          closeSocket(state, CloseCodes.TooManyConnections, `Too many connections: at most ${options.maxAnonymousConnectionsPerAddress} anonymous ones per address`);
          return false;
        }
        state.connectionLease = lease;
      }
      // Closed while we were verifying: arm nothing (a timer would outlive the socket).
      if (socket.readyState !== socket.OPEN) {
        state.release();
        return false;
      }
      state.principal = principal;
      state.presence = deps.presence.connectionOpened('websocket', principal);
      if (principal.kind === 'user') state.revocationWatch = deps.revocations.watch(principal, state);
      if (principal.kind === 'user') {
        state.refreshSession = (token) => refreshSession(state, token);
        armSessionExpiry(state, principal);
      }
      // The parent logger with the id spelled out: a child logger per connection would be kept
      // for the connection's lifetime just for these two lines.
      logger.info({ connectionId, userId: userIdForLog(principal), clientAddress: state.clientAddress }, 'websocket connected');
      return true;
    },

    subscribe: async (state, operation, payload) => {
      const decision = await decide(state, protocol.operationCount(state), operation, payload);
      // Completed by the client (or its socket closed) while being decided: never started.
      if (!operation.open) return;
      if (decision.kind === 'errors') return operation.error(decision.errors);
      if (decision.kind === 'operation') return runOperation(state, operation, decision.prepared, decision.naming);
      return joinShared(state, operation, decision);
    },

    // Results still waiting for it must not be sent any more (a reused id would receive them).
    completedByClient: (state, operation) => {
      state.removeConflatable(operation);
      state.outgoing.dropOperation(operation.id);
    },
  });

  /**
   * What a subscribe message asks for: errors (it never runs), a query or mutation to run through
   * Yoga's envelop, or a subscription for a shared delivery. `openOperations` counts this one.
   */
  const decide = async (state: ConnectionState, openOperations: number, operation: WsOperation, payload: SubscribePayload): Promise<Decision> => {
    const id = operation.id;
    if (openOperations > options.maxSubscriptionsPerConnection) {
      state.log.info({ operationId: id }, 'subscription limit per connection reached');
      metrics.limitTrips.inc({ limit: 'subscriptions_per_connection' });
      return { kind: 'errors', errors: [limitExceeded(`At most ${options.maxSubscriptionsPerConnection} operations may be open on one connection`, 'subscriptions_per_connection')] };
    }
    // Before anything is parsed (Yoga's persisted-operations plugin, which HTTP and SSE use, never
    // sees a WebSocket message).
    let params: SubscribePayload = payload;
    if (trustedDocuments) {
      const trusted = resolveTrustedDocument(trustedDocuments, payload, state.principal ?? ANONYMOUS);
      if (!trusted.ok) {
        metrics.trustedDocumentRefusals.inc({ reason: trusted.reason, transport: 'websocket' });
        return { kind: 'errors', errors: [trusted.error] };
      }
      params = trusted.params;
    }
    // The handle a subscription's resolver names its topic to (queries and mutations ignore it).
    const naming = deps.sharedDeliveries.naming();
    try {
      const prepared = await prepareOperation(
        yoga,
        {
          request: undefined,
          socket: state.socket,
          principal: state.principal,
          connectionId: state.connectionId,
          operationId: id,
          clientAddress: state.clientAddress,
          onRateLimited: () => strike(state),
          refreshSession: state.refreshSession,
          sharedDelivery: naming,
        },
        params,
      );
      if (!prepared.ok) return { kind: 'errors', errors: prepared.errors };
      if (prepared.kind !== 'subscription') return { kind: 'operation', prepared, naming };
      // The field that will execute, not the first one written: with @skip, @include and
      // fragments they differ, and shareability and conflation follow the one that runs.
      const member = deps.sharedDeliveries.memberOf(prepared.args, operation.idJson, state);
      if (!member) return { kind: 'operation', prepared, naming };
      // Validation and the context are done (above); its subscribe runs through the pipeline in
      // `joinShared` (admission, the resolver naming its topic), and no pipeline runs per event.
      return { kind: 'shared', member, prepared, context: prepared.args.contextValue as GraphQLContext, naming };
    } catch (error) {
      state.log.error({ err: error, operationId: id }, 'subscribe failed');
      return { kind: 'errors', errors: [internalError()] };
    }
  };

  /**
   * A query or mutation (or a subscription whose executing field could not be told): run through
   * Yoga's envelop, its result sent as one next, then complete.
   */
  const runOperation = async (state: ConnectionState, operation: WsOperation, prepared: PreparedOperation & { ok: true }, naming: TopicNaming): Promise<void> => {
    let result: unknown;
    try {
      result = await prepared.run();
    } catch (error) {
      naming.releaseHeld();
      state.log.error({ err: error, operationId: operation.id }, 'operation failed');
      return operation.error([internalError()]);
    }
    if (!isAsyncIterable(result)) {
      // A subscription refused after admission (its variables do not coerce) gives its unit back.
      naming.releaseHeld();
      operation.nextJson(resultJson(result as ExecutionResult));
      return operation.complete();
    }
    return runStream(state, operation, result as AsyncIterable<ExecutionResult>, naming);
  };

  /**
   * A stream of results as next messages, until it ends or the client completes it: a
   * subscription whose resolver opened a stream of its own, or whose field could not be told.
   */
  const runStream = async (state: ConnectionState, operation: WsOperation, results: AsyncIterable<ExecutionResult>, naming?: TopicNaming): Promise<void> => {
    try {
      await streamResults(state, operation, results);
    } finally {
      naming?.releaseHeld();
    }
  };
  const streamResults = async (state: ConnectionState, operation: WsOperation, results: AsyncIterable<ExecutionResult>): Promise<void> => {
    const iterator = results[Symbol.asyncIterator]();
    if (!operation.running({ stop: () => returnQuietly(iterator) })) {
      returnQuietly(iterator);
      return;
    }
    try {
      for (let step = await iterator.next(); !step.done && operation.open; step = await iterator.next()) operation.nextJson(resultJson(step.value));
      operation.complete();
    } catch (error) {
      // A coded error a stream ends with on purpose (presence could not be read: try again)
      // reaches the client as the stream's last result, as over SSE; anything else is a bug of ours.
      if (isCodedClientError(error)) {
        state.log.info({ operationId: operation.id, code: error.extensions['code'] }, 'stream ended with an error');
        operation.nextJson(resultJson({ errors: [error] }));
        return operation.complete();
      }
      state.log.error({ err: error, operationId: operation.id }, 'operation failed');
      operation.error([internalError()]);
    }
  };

  /**
   * A subscription runs its subscribe through Yoga's envelop like any operation (every plugin's
   * onSubscribe: admission, that is rate limit and quota; the root field's authorization and
   * resolver), with a context that carries the naming handle: the resolver names its topic and
   * the subscriber joins that topic's group, which writes its results. What plugins hold for the
   * subscription's life they hand to the handle (holdUntilEnded), given back when the member
   * ends. Refused: the pipeline's result (errors) as one next, then complete. A resolver that
   * opened a stream of its own instead runs as it is (runStream).
   */
  const joinShared = async (state: ConnectionState, operation: WsOperation, decision: Decision & { kind: 'shared' }): Promise<void> => {
    const { member, prepared, context, naming } = decision;
    let result: unknown;
    try {
      // In the context built for it (plugins may keep state by context), which holds the handle.
      result = await prepared.run();
    } catch (error) {
      context.log.error({ err: error }, 'subscribe failed');
      result = { errors: [internalError()] };
    }
    if (!isAsyncIterable(result)) {
      naming.releaseHeld();
      operation.nextJson(resultJson(result as ExecutionResult));
      return operation.complete();
    }
    const stream = result as AsyncIterableIterator<ExecutionResult>;
    const named = naming.named;
    // The resolver opened a stream of its own: it runs as it is, holding what was handed over.
    if (!named) return runStream(state, operation, stream, naming);
    // Not kept: the plugins handed what they hold over to the member (holdUntilEnded), and the
    // stream with its hooks and context would cost kilobytes per subscription.
    returnQuietly(stream);
    if (!operation.open) {
      // Completed by the client (or its socket closed) while being admitted.
      naming.releaseHeld();
      return;
    }
    let joined;
    try {
      // When the member ends, the operation does: a server-side end completes it (the client may
      // subscribe again); after a client's complete, it has ended already.
      joined = deps.sharedDeliveries.join(named, member, { held: naming.held, ended: operation });
    } catch (error) {
      // A bug of ours (a guard's watch, the bus) ends this one subscription, not the socket.
      naming.releaseHeld();
      context.log.error({ err: error }, 'joining a shared delivery failed');
      return operation.error([internalError()]);
    }
    if (deps.deliveryRules.conflateBy.has(member.field) && operation.open) state.addConflatable({ id: operation.id, field: member.field, owner: operation });
    operation.running(joined);
  };

  /** Only runs while a client is behind: which operation a message is for, and what it replaces. */
  const classify = (state: ConnectionState, message: string) => {
    let parsed: { id?: unknown; type?: unknown; payload?: { data?: Record<string, unknown> | null } };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return {};
    }
    const operationId = typeof parsed.id === 'string' ? parsed.id : undefined;
    const field = operationId === undefined || parsed.type !== 'next' ? undefined : state.conflatableOf(operationId)?.field;
    const value = field ? parsed.payload?.data?.[field] : undefined;
    const conflateBy = field ? deps.deliveryRules.conflateBy.get(field) : undefined;
    const key = conflateBy !== undefined && typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[conflateBy] : undefined;
    // Without the key field selected under its own name, events cannot be told apart: deliver all.
    return typeof key === 'string' ? { operationId, conflationKey: key } : { operationId };
  };
  /** A client that keeps flooding after being told to slow down is disconnected with 4290. */
  const strike = (state: ConnectionState) => {
    const now = Date.now();
    const strikes = (state.rateLimitStrikes ??= []);
    strikes.push(now);
    while ((strikes[0] ?? now) <= now - options.rateLimitStrikes.windowMs) strikes.shift();
    if (strikes.length >= options.rateLimitStrikes.disconnectAfter && state.socket.readyState === state.socket.OPEN) {
      state.log.info('closing a connection that kept exceeding its rate limit');
      metrics.limitTrips.inc({ limit: 'rate_disconnect' });
      closeFlooder(state, 'Too many requests');
    }
  };

  /**
   * The token's expiry: a warning `ping` first (if due), then the close. One queue of deadlines
   * for every connection; a deadline is handled from its timer, so the warning never goes out
   * before connection_ack.
   */
  const expiryDue = (state: ConnectionState): void => {
    if (state.released) return;
    const expiresAt = (state.principal as { expiresAt: number }).expiresAt;
    if (state.expiryWarningDue) {
      state.expiryWarningDue = false;
      state.log.debug('warning the client that its token expires soon');
      state.outgoing.send(pingFrame({ reason: 'token_expiring', expiresAt: new Date(expiresAt).toISOString() }));
      return armExpiry(state);
    }
    state.log.info('websocket token expired; closing');
    closeSocket(state, CloseCode.Forbidden, 'Unauthenticated: Token has expired');
  };
  const expiries = new DeadlineQueue<ConnectionState>(expiryDue);
  /** The token's expiry, warning first: at connect and again for the token of a refresh. */
  const armSessionExpiry = (state: ConnectionState, principal: VerifiedPrincipal): void => {
    if (principal.expiresAt === undefined) {
      state.expiryWarningDue = false;
      expiries.cancel(state);
      return;
    }
    // Warn first, so the client can refresh (or open a fresh connection) before this one is
    // closed. Never before connection_ack, which is sent once connect returns (so at least 1 ms on).
    const warnAt = Math.max(principal.expiresAt - options.tokenExpiryWarningMs, Date.now() + 1);
    state.expiryWarningDue = options.tokenExpiryWarningMs > 0 && warnAt < principal.expiresAt;
    armExpiry(state);
  };

  /**
   * refreshSession: the connection's token replaced by a fresh one of the same user with the same
   * roles. Authorization depends on nothing else of a token (its user and roles), so every open
   * subscription stays authorized and is kept; a token with other roles is refused, since what the
   * subscriptions may see was decided with the old ones (the client reconnects instead, and every
   * subscription is authorized anew). A refusal changes nothing: the old token still serves until
   * it expires.
   */
  const refreshSession = async (state: ConnectionState, token: string): ReturnType<SessionRefresher> => {
    const current = state.principal;
    const fresh = await verify(state, token, 'session refresh refused: the token does not verify');
    if (fresh instanceof TokenRejectedError) throw unauthenticated(fresh.message, fresh.reason);
    if (current?.kind !== 'user' || fresh.kind !== 'user' || fresh.userId !== current.userId) {
      state.log.info({ userId: userIdForLog(current) }, 'session refresh refused: a token of another user');
      throw forbiddenBecause('The token is for another user; open a new connection with it instead', 'other_user');
    }
    if (fresh.roles.size !== current.roles.size || [...fresh.roles].some((role) => !current.roles.has(role))) {
      state.log.info({ userId: current.userId }, 'session refresh refused: the roles changed');
      throw forbiddenBecause('The token has other roles; open a new connection with it so that every subscription is authorized anew', 'roles_changed');
    }
    // Closed meanwhile (expired, revoked, gone): nothing to refresh, and no timer may be armed.
    if (state.released || state.principal !== current) throw forbiddenBecause('The connection is closing', 'closing');
    state.principal = fresh;
    state.revocationWatch?.cancel();
    state.revocationWatch = deps.revocations.watch(fresh, state);
    armSessionExpiry(state, fresh);
    state.log.info({ userId: fresh.userId, expiresAt: fresh.expiresAt }, 'websocket session refreshed');
    return { userId: fresh.userId, roles: [...fresh.roles], expiresAt: fresh.expiresAt };
  };
  const armExpiry = (state: ConnectionState): void => {
    const expiresAt = (state.principal as { expiresAt: number }).expiresAt;
    expiries.schedule(state, state.expiryWarningDue ? expiresAt - options.tokenExpiryWarningMs : expiresAt + options.clockToleranceMs);
  };

  /** Every queue's options: one object for the transport, not one per connection. */
  const outgoingOptions: OutgoingQueueOptions<ConnectionState> = {
    maxBufferedBytes: options.maxBufferedBytes,
    graceMs: options.slowConsumerGraceMs,
    classify,
    onConflated: () => metrics.eventsDropped.inc({ reason: 'conflated', source: 'websocket' }),
    onSlowConsumer: (state) => {
      const socket = state.socket;
      state.log.info({ bufferedBytes: socket.bufferedAmount }, 'closing a slow consumer');
      metrics.limitTrips.inc({ limit: 'slow_consumer' });
      closeSocket(state, CloseCodes.SlowConsumer, 'Slow consumer: events were not read in time');
      // The close frame queues behind everything unread; a client that reads nothing never
      // sees it, so the socket and its buffers are let go shortly after regardless.
      setTimeout(() => socket.terminate(), 1_000).unref();
    },
  };

  // Keep-alive: every keepAliveMs a ping; a peer that has not answered by the next one is dead.
  const keepAlive = new KeepAliveSweep<ConnectionState>(options.keepAliveMs, (state) => {
    const socket = state.socket;
    if (!state.alive) {
      state.log.info('websocket missed keep-alive; terminating');
      metrics.limitTrips.inc({ limit: 'keepalive_timeout' });
      socket.terminate();
      return;
    }
    state.alive = false;
    socket.ping();
  });

  const extras = new Set<ConnectionState>();
  const anonymousSlots = new InstanceSlots(options.maxAnonymousConnections);

  // The socket listeners are the same functions for every socket (`this` is the socket): a
  // closure per listener per connection would be kept for the connection's life.
  function onSocketError(this: WebSocket, error: Error & { code?: string }): void {
    const state = stateOf(this);
    // Includes frames over maxPayload (ws closes with 1009 itself) and protocol violations.
    state.log.info({ err: error }, 'websocket error');
    state.closedWith ??= WS_ERROR_CLOSE_CODES[error.code ?? ''] ?? 1002;
    if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') metrics.limitTrips.inc({ limit: 'ws_message_bytes' });
  }
  function onSocketPong(this: WebSocket): void {
    stateOf(this).alive = true;
  }
  function onSocketMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
    const state = stateOf(this);
    // Decided to close: whatever else arrives meanwhile is not worth handling.
    if (state.closedWith !== undefined) return;
    // Before anything is parsed: a flood of any message (pings and completes too) costs this alone.
    if (!state.takeMessage(Date.now(), options.maxMessagesPerSecond, options.messageBurst)) {
      state.log.info('closing a connection that sent messages too fast');
      metrics.limitTrips.inc({ limit: 'ws_messages' });
      closeFlooder(state, `Too many messages: at most ${options.maxMessagesPerSecond} per second`);
      return;
    }
    if (isBinary) {
      closeSocket(state, CloseCode.BadRequest, 'Binary frames are not supported');
      return;
    }
    // Not awaited here: a subscribe is decided asynchronously, and an async listener would keep a
    // suspended frame per message for that long.
    protocol.message(state, data.toString()).catch((error: unknown) => {
      state.log.error({ err: error }, 'websocket message handling failed');
      closeSocket(state, CloseCode.InternalServerError, 'Internal server error');
    });
  }
  function onSocketClose(this: WebSocket, code: number): void {
    const state = stateOf(this);
    keepAlive.remove(state, state.keepAliveBucket);
    expiries.cancel(state);
    extras.delete(state);
    state.outgoing.dispose();
    state.release();
    logger.info({ connectionId: state.connectionId, code: state.closedWith ?? code }, 'websocket closed');
    metrics.websocketCloses.inc({ code: closeCodeLabel(state.closedWith ?? code) });
    protocol.closed(state);
  }
  /** connection_init did not arrive in time (PROTOCOL.md: 4408). */
  const initTimedOut = (state: ConnectionState) => {
    state.initTimer = undefined;
    if (!state.initReceived) closeSocket(state, CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
  };

  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    // Node builds a UUID by concatenation: a tree of a dozen string pieces (~400 bytes) held for
    // the connection's life. Copied through a Buffer it is one flat 36-character string.
    const connectionId = Buffer.from(randomUUID(), 'latin1').toString('latin1');
    const state = new ConnectionState(socket, connectionId, deps.clientAddressOf(request), logger, outgoingOptions, options.messageBurst);
    (socket as StatefulSocket)[STATE] = state;
    extras.add(state);
    if (logger.isLevelEnabled('debug')) state.log.debug('websocket opened');

    socket.on('error', onSocketError);
    socket.on('pong', onSocketPong);
    socket.on('close', onSocketClose);
    state.keepAliveBucket = keepAlive.add(state);
    if (options.connectionInitTimeoutMs > 0) {
      state.initTimer = setTimeout(initTimedOut, options.connectionInitTimeoutMs, state);
      state.initTimer.unref();
    }

    // Another subprotocol: closed (4406), and nothing it sends is read.
    if (protocol.opened(state)) socket.on('message', onSocketMessage);
  });

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    let pathname: string;
    try {
      pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
    } catch {
      // A request target no URL parser accepts: answer it, never throw out of the listener.
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      return;
    }
    if (pathname !== options.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (webSocket) => wss.emit('connection', webSocket, request));
  };
  deps.httpServer.on('upgrade', onUpgrade);

  return {
    connectionCount: () => wss.clients.size,
    sharedGroupCount: () => deps.sharedDeliveries.groupCount(),
    sharedJoinedCount: () => deps.sharedDeliveries.joinedCount(),
    connections: () =>
      [...extras].map((extra) => ({ connectionId: extra.connectionId, userId: userIdForLog(extra.principal), heldBytes: extra.outgoing.heldBytes() })),
    async close(graceMs) {
      deps.httpServer.off('upgrade', onUpgrade);
      keepAlive.stop();
      expiries.stop();
      for (const extra of extras) closeSocket(extra, 1001, 'Server shutting down; reconnect');
      const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
      const graceOver = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([closed, graceOver]);
      // A peer that never answers the close frame must not hold shutdown hostage.
      for (const client of wss.clients) client.terminate();
      await closed;
    },
  };
}

/** Every close the server initiates goes through here, so metrics count the code it sent. */
function closeSocket(extra: ConnectionState, code: number, reason: string): void {
  try {
    extra.socket.close(code, fitCloseReason(reason));
    extra.closedWith ??= code;
  } catch (error) {
    // ws refuses invalid codes; a socket must still never outlive a decision to close it.
    extra.log.error({ err: error, code }, 'close failed; terminating');
    extra.socket.terminate();
  }
}

/**
 * Closes a flooding client with 4290 and stops reading from it: a flooder keeps writing until it
 * sees the close frame, and every frame it sent meanwhile would still be read and parsed (a
 * megabyte of small frames each time). Its answer to the close is not awaited either.
 */
function closeFlooder(state: ConnectionState, reason: string): void {
  closeSocket(state, CloseCodes.RateLimited, reason);
  state.socket.pause();
  setTimeout(() => state.socket.terminate(), 1_000).unref();
}

/** A close reason may hold 123 bytes of UTF-8 (RFC 6455); cut on a character boundary. */
function fitCloseReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let fitted = '';
  for (const character of reason) {
    if (Buffer.byteLength(fitted + character) > 120) break;
    fitted += character;
  }
  return `${fitted}…`;
}

/** Peers choose their own close codes: keep the metric's label set bounded. */
const KNOWN_CLOSE_CODES = new Set([1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 4290, 4291, 4292, 4400, 4401, 4403, 4406, 4408, 4409, 4429, 4499, 4500]);
function closeCodeLabel(code: number): string {
  return KNOWN_CLOSE_CODES.has(code) ? String(code) : 'other';
}

/** What ws closes with when it refuses a frame itself. */
const WS_ERROR_CLOSE_CODES: Readonly<Record<string, number>> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_INVALID_UTF8: 1007,
};

function userIdForLog(principal: Principal | undefined): string | undefined {
  return principal?.kind === 'user' ? principal.userId : undefined;
}

/** A count with a cap on this instance alone: anonymous connections. */
class InstanceSlots {
  taken = 0;
  constructor(private readonly capacity: number) {}

  take(): QuotaLease | undefined {
    if (this.taken >= this.capacity) return undefined;
    this.taken++;
    return new InstanceSlot(this);
  }
}

/** One place under an InstanceSlots cap; `release` is idempotent. */
class InstanceSlot implements QuotaLease {
  private released = false;
  constructor(private readonly slots: InstanceSlots) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.slots.taken--;
  }
}

/** Where each socket's connection state is kept, for the listeners every socket shares. */
const STATE = Symbol('tidings.connection');
type StatefulSocket = WebSocket & { [STATE]?: ConnectionState };

function stateOf(socket: WebSocket): ConnectionState {
  return (socket as StatefulSocket)[STATE]!;
}

/**
 * What a connection carries, its protocol state included, as one object of one class: every
 * field is there from the start and the logger getter lives on the prototype, so V8 keeps one
 * compact shape for all connections. What connecting sets up is held in fields rather than as a
 * list of cleanup closures; `release` undoes it. Also the connection's revocation listener.
 */
class ConnectionState implements RevocationListener, ProtocolConnection, DeadlineSlot, ResultSink {
  /** Times (ms) of this connection's recent rate-limited operations; made on the first. */
  rateLimitStrikes: number[] | undefined = undefined;
  /** The message bucket (see takeMessage): what is left, and when it was last refilled. */
  private messageTokens: number;
  private messagesCountedAt = Date.now();
  /** This connection's conflatable subscriptions: a short list, replaced on change. */
  private conflatable: readonly ConflatableOperation[] | undefined = undefined;
  readonly outgoing: OutgoingQueue<ConnectionState>;
  principal: Principal | undefined = undefined;
  /** The code this server closed with, if it closed first (the peer may never echo it). */
  closedWith: number | undefined = undefined;
  /** Answered the last keep-alive ping (see KeepAliveSweep). */
  alive = true;
  keepAliveBucket = 0;
  /** The protocol's state (see graphql-transport-ws.ts). */
  initReceived = false;
  acknowledged = false;
  operations: Map<string, WsOperation> | undefined = undefined;
  initTimer: NodeJS.Timeout | undefined = undefined;
  connectionLease: QuotaLease | undefined = undefined;
  /** An anonymous connection's place under this instance's cap. */
  instanceSlot: QuotaLease | undefined = undefined;
  presence: PresenceEntry | undefined = undefined;
  revocationWatch: SessionWatch | undefined = undefined;
  /** A user connection's refreshSession (one closure per connection, shared by its operations' contexts). */
  refreshSession: SessionRefresher | undefined = undefined;
  /** This connection's place in the expiry queue (see DeadlineQueue). */
  deadlineIndex = -1;
  deadline = 0;
  /** The token-expiry warning has yet to be sent (the close comes after it). */
  expiryWarningDue = false;
  released = false;
  private logger: Logger | undefined = undefined;

  constructor(
    readonly socket: WebSocket,
    readonly connectionId: string,
    /** The peer's address, through trusted proxies (TRUST_PROXY). */
    readonly clientAddress: string,
    private readonly parentLogger: Logger,
    outgoingOptions: OutgoingQueueOptions<ConnectionState>,
    messageBurst: number,
  ) {
    this.outgoing = new OutgoingQueue(socket, outgoingOptions, this);
    this.messageTokens = messageBurst;
  }

  /** Takes one message from a token bucket of `burst` refilled at `perSecond`: false when it is empty. */
  takeMessage(now: number, perSecond: number, burst: number): boolean {
    const elapsed = now - this.messagesCountedAt;
    if (elapsed > 0) {
      this.messageTokens = Math.min(burst, this.messageTokens + (elapsed * perSecond) / 1000);
      this.messagesCountedAt = now;
    }
    if (this.messageTokens < 1) return false;
    this.messageTokens -= 1;
    return true;
  }

  /** Made when first used: a quiet connection never needs one (connect and close lines name the connection on the parent logger). */
  get log(): Logger {
    return (this.logger ??= this.parentLogger.child({ connectionId: this.connectionId }));
  }

  // The protocol's view of the socket.
  get protocol(): string {
    return this.socket.protocol;
  }

  /** A shared delivery's result for one of this connection's operations. */
  next(idJson: string, payloadJson: string): void {
    this.outgoing.send(nextFrame(idJson, payloadJson));
  }

  /** Never waits for the peer: backpressure is the outgoing queue's job, so one slow client cannot stall delivery. */
  send(data: string): void {
    this.outgoing.send(data);
  }

  close(code: number, reason: string): void {
    closeSocket(this, code, reason);
  }

  /** The open conflatable operation with this id (entries of ended ones are dropped lazily, here and on add). */
  conflatableOf(id: string): ConflatableOperation | undefined {
    return this.conflatable?.find((entry) => entry.id === id && entry.owner.open);
  }

  addConflatable(entry: ConflatableOperation): void {
    this.conflatable = this.conflatable ? [...this.conflatable.filter((other) => other.owner.open), entry] : [entry];
  }

  /** Forgets `owner`'s entry (an operation that ended), leaving a newer one with its id alone. */
  removeConflatable(owner: unknown): void {
    if (!this.conflatable) return;
    const left = this.conflatable.filter((other) => other.owner !== owner && other.owner.open);
    this.conflatable = left && left.length > 0 ? left : undefined;
  }

  sessionRevoked(reason: string): void {
    this.log.info('websocket session revoked; closing');
    closeSocket(this, CloseCode.Forbidden, `Unauthenticated: Session was revoked (${reason})`);
  }

  /** Undoes what connecting set up: the init timer, the revocation watch, presence, the quota unit (the expiry queue is the transport's). Idempotent. */
  release(): void {
    this.released = true;
    clearTimeout(this.initTimer);
    this.initTimer = undefined;
    this.revocationWatch?.cancel();
    this.presence?.release();
    this.connectionLease?.release();
    this.instanceSlot?.release();
    this.revocationWatch = this.presence = this.connectionLease = this.instanceSlot = undefined;
  }
}

function internalError(): GraphQLError {
  return new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/** A result as a next message's payload; Yoga's `http` extension means nothing over a socket. */
function resultJson(result: ExecutionResult): string {
  return JSON.stringify(result.errors ? { ...result, errors: result.errors.map(forSocket) } : result);
}

/** A GraphQLError with a code of ours (not a masked INTERNAL_SERVER_ERROR): meant for the client. */
function isCodedClientError(error: unknown): error is GraphQLError {
  if (!(error instanceof GraphQLError)) return false;
  const code = error.extensions['code'];
  return typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR';
}

/** Returns a stream whose end nobody awaits: a rejection there has no one to tell. */
function returnQuietly(stream: AsyncIterator<unknown>): void {
  stream.return?.()?.catch(() => undefined);
}
