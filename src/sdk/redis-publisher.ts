import type { Redis } from 'ioredis';
import { publishManyToRedis, publishToRedis } from '../bus/redis-event-bus.js';
import { redisKeys } from '../redis/keys.js';
import {
  buildEvent,
  membershipChangeSchema,
  sessionRevocationSchema,
  type EventDataInput,
  type SessionRevocation,
  type EventEnvelope,
  type EventType,
  type MembershipChange,
  type TidingsEvent,
} from '../events/contracts.js';

/**
 * For backend services written in TypeScript: publish Tidings events straight onto Redis, with
 * the same contract and validation as the gateway (see docs/CHANNELS.md). Other languages
 * follow the documented channels and JSON Schemas instead.
 *
 *   const tidings = createRedisPublisher({ redis: new Redis(url), prefix: 'tidings:' });
 *   await tidings.publish('priceUpdated', { hotelId: 'h1', roomType: 'DOUBLE', price: { amountMinor: 12900, currency: 'EUR' } });
 */
export interface RedisPublisher {
  /** Validates, wraps in an envelope and publishes. Rejects with InvalidEventError on bad data. */
  publish<T extends EventType>(
    type: T,
    data: EventDataInput<T>,
    options?: { id?: string; occurredAt?: string },
  ): Promise<EventEnvelope<T>>;
  /**
   * Validates each item on its own and publishes the valid ones in one pipeline (one round trip),
   * in order. Each result is the item's envelope, or the InvalidEventError it failed with; rejects
   * only when Redis could not take the pipeline (then nothing is known to be published).
   */
  publishMany<T extends EventType>(
    type: T,
    items: ReadonlyArray<{ readonly data: EventDataInput<T>; readonly id?: string; readonly occurredAt?: string }>,
  ): Promise<Array<EventEnvelope<T> | InvalidEventError>>;
  /** Announces a change your service already made to `{prefix}conversation:{id}:members`. */
  announceMembershipChange(change: MembershipChange): Promise<void>;
  /**
   * Ends the user's sessions on every instance and refuses their tokens issued before now, for
   * `ttlSeconds` (at least your longest token lifetime; the gateway's default is one day).
   */
  revokeSessions(userId: string, options?: { reason?: string; ttlSeconds?: number }): Promise<SessionRevocation>;
}

export class InvalidEventError extends Error {
  constructor(readonly issues: readonly string[]) {
    super(`Invalid event: ${issues.join('; ')}`);
    this.name = 'InvalidEventError';
  }
}

export function createRedisPublisher(options: { redis: Pick<Redis, 'publish' | 'multi' | 'pipeline'>; prefix: string }): RedisPublisher {
  return {
    async publishMany(type, items) {
      const results = items.map((item) => {
        const built = buildEvent(type, item.data, { id: item.id, occurredAt: item.occurredAt });
        return built.ok ? built.event : new InvalidEventError(built.issues);
      });
      const valid = results.filter((result): result is EventEnvelope<typeof type> => !(result instanceof InvalidEventError));
      const published = await publishManyToRedis(options.redis, options.prefix, valid as TidingsEvent[]);
      if (published.some((ok) => !ok)) throw new Error(`Redis refused ${published.filter((ok) => !ok).length} of ${valid.length} events`);
      return results;
    },
    async publish(type, data, publishOptions) {
      const built = buildEvent(type, data, publishOptions);
      if (!built.ok) throw new InvalidEventError(built.issues);
      await publishToRedis(options.redis, options.prefix, built.event as TidingsEvent);
      return built.event;
    },
    async announceMembershipChange(change) {
      const parsed = membershipChangeSchema.safeParse(change);
      if (!parsed.success) throw new InvalidEventError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
      await options.redis.publish(redisKeys(options.prefix).membershipChannel(), JSON.stringify(parsed.data));
    },
    async revokeSessions(userId, revokeOptions) {
      const parsed = sessionRevocationSchema.safeParse({ userId, revokedAt: Date.now(), ...(revokeOptions?.reason ? { reason: revokeOptions.reason } : {}) });
      if (!parsed.success) throw new InvalidEventError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
      const keys = redisKeys(options.prefix);
      const results = await options.redis
        .multi()
        .set(keys.sessionsRevoked(userId), String(parsed.data.revokedAt), 'PX', (revokeOptions?.ttlSeconds ?? 86_400) * 1000)
        .publish(keys.sessionRevocationChannel(), JSON.stringify(parsed.data))
        .exec();
      const failed = results?.find(([error]) => error);
      if (!results || failed) throw failed?.[0] ?? new Error('session revocation transaction aborted');
      return parsed.data;
    },
  };
}
