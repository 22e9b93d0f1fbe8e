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

/**
 * What a shareable field's subscribe resolver reports its topic to, in place of a stream of its
 * own: the transport that shares deliveries asks it (a contract of the schema's, so the transport
 * depends on the schema and not the other way).
 */
export interface SharedDeliveryHandle {
  /**
   * `guard`, when given, is the stream's own filter and revocation (as guardStream takes them),
   * applied once per group: a group with a guard is per user, its members agreeing on the user
   * and the variables. `accept` keeps only the events it returns true for, before anything is
   * executed; a revocation (`watchRevocation`, or `stillAllowed` answering false) delivers the
   * field's revoked result (its resolver given REVOKED) to every member and completes them.
   */
  nameTopic(topic: string, guard?: StreamGuard<TidingsEvent>): void;
}

/** The long-lived parts resolvers use; built once in the composition root (src/app.ts). */
export interface GatewayServices {
  readonly bus: EventBus;
  readonly publisher: EventPublisher;
  readonly directory: AccessDirectory;
  readonly chat: ChatBackend;
  readonly typingThrottle: TypingThrottle;
  readonly revocations: SessionRevocations;
  readonly logger: Logger;
}

/** The GraphQL context of one operation (one HTTP request, or one subscribe over WS/SSE). */
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
   * Set while the WebSocket transport asks a shareable field's subscribe resolver (its
   * `extensions.delivery`, see delivery.ts) for its topic: the resolver reports it here, and the
   * subscriber joins a group that shares one execution per event (SharedDeliveries.topicOf).
   */
  readonly sharedDelivery?: SharedDeliveryHandle;
  /** Set on WebSocket operations: tells the connection one of its operations was rate limited. */
  readonly onRateLimited?: () => void;
}
