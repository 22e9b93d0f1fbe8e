import type { Role } from '../config/config.js';
import type { Logger } from 'pino';
import type { Principal } from '../auth/principal.js';
import type { StreamGuard } from '../bus/guarded-stream.js';
import type { TidingsEvent } from '../events/contracts.js';
import type { OperationLog } from '../logging/logger.js';
import type { EventBus } from '../bus/event-bus.js';
import type { ChatBackend } from '../chat/chat-backend.js';
import type { AccessDirectory } from '../directory/directory.js';
import type { EventPublisher } from '../publish/event-publisher.js';
import type { TypingThrottle } from '../publish/typing-throttle.js';
import type { SessionRevocations } from '../sessions/session-revocations.js';
import type { PresenceScope } from '../presence/presence-store.js';

/**
 * What a subscription field's subscribe resolver reports its topic to, in place of opening a
 * stream of its own: the transports' shared deliveries set it (a contract of the schema's, so the
 * transports depend on the schema and not the other way).
 */
export interface SharedDeliveryHandle {
  /**
   * Names the subscriber's topic; the resolver returns what this returns (a stream that yields
   * nothing: the shared delivery feeds the subscriber). `guard`, when given, is the subscriber's
   * own filter and revocation (as guardStream takes them), applied per member: `accept` keeps
   * only the events it returns true for; a revocation (`watchRevocation`, or `stillAllowed`
   * answering false) delivers the field's revoked result (its resolver given REVOKED) to that
   * member and completes it.
   */
  nameTopic(topic: string, guard?: StreamGuard<TidingsEvent>): AsyncIterableIterator<never>;
  /**
   * For plugins: what a subscription holds for its life (a quota unit, a presence entry) is
   * given back when its delivery ends. A shared delivery returns the subscribe's result stream
   * as soon as the subscriber has joined (keeping it would cost kilobytes per subscription), so
   * `onEnd` hooks run then: a plugin that holds something until the subscription ends hands it
   * here when this handle is set. Given back too when the subscribe is refused after this call.
   */
  holdUntilEnded(held: { release(): void }): void;
}

/**
 * Presence (src/presence/): what subscriptions hold while they are open (a member in a
 * conversation), what presence subscribers watch, and who is present or online now.
 */
export interface PresenceService {
  /** While held, the user counts as present in the scope (this instance's share of it). */
  hold(scope: PresenceScope, userId: string): { release(): void };
  /** While watched, this instance sweeps the scope for users of instances that died. */
  watch(scope: PresenceScope): { release(): void };
  present(scope: PresenceScope): Promise<string[]>;
  online(userIds: readonly string[]): Promise<Set<string>>;
  /** The most user ids one userPresence query or subscription may name. */
  readonly maxUserIds: number;
}

/** The long-lived parts resolvers use; built once in the composition root (src/app.ts). */
export interface GatewayServices {
  readonly bus: EventBus;
  readonly publisher: EventPublisher;
  readonly directory: AccessDirectory;
  readonly chat: ChatBackend;
  readonly typingThrottle: TypingThrottle;
  readonly revocations: SessionRevocations;
  readonly presence: PresenceService;
  readonly logger: Logger;
}

/** The GraphQL context of one operation (one HTTP request, or one subscribe over WS/SSE). */
/**
 * What a WebSocket connection does with a fresh token (refreshSession): verifies it, and when it
 * names the same user with the same roles, makes it the connection's token (expiry and its
 * warning re-armed from it) and keeps every subscription. Rejects with a coded GraphQLError and
 * changes nothing otherwise.
 */
export type SessionRefresher = (token: string) => Promise<{ readonly userId: string; readonly roles: readonly Role[]; readonly expiresAt: number | undefined }>;

export interface GraphQLContext {
  readonly principal: Principal;
  readonly services: GatewayServices;
  readonly transport: 'websocket' | 'sse' | 'http';
  /** Logs about this operation: carries its connectionId and operationId (WebSocket) or requestId. */
  readonly log: OperationLog;
  /** The peer's IP address: the rate-limit key of anonymous callers. */
  readonly clientAddress?: string;
  /** Set for mutations: charges an expensive field's own rate budget (RATE_LIMITED when spent). */
  readonly chargeRateBudget?: (budget: 'chat') => Promise<void>;
  /**
   * Set when a subscription is delivered by the shared deliveries (every subscription, over
   * WebSocket and SSE): the resolver reports its topic here instead of subscribing to the bus,
   * and the subscriber joins a group that executes each event once for all its members.
   */
  readonly sharedDelivery?: SharedDeliveryHandle;
  /** Set on WebSocket operations: tells the connection one of its operations was rate limited. */
  readonly onRateLimited?: () => void;
  /** Set on WebSocket operations of a user: refreshSession hands the connection a fresh token. */
  readonly refreshSession?: SessionRefresher;
  /** The caller's W3C trace context (HTTP `traceparent` header): what it publishes continues that trace. */
  readonly traceparent?: string;
}
