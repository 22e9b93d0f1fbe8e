import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import {
  buildEvent,
  type EventDataInput,
  type EventEnvelope,
  type EventType,
  type TidingsEvent,
} from '../events/contracts.js';
import { badUserInput, publishFailed } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';

export interface EventPublisher {
  /**
   * Validates `data` against the event contract, wraps it in an envelope (new id, occurredAt
   * now unless given) and publishes it. Throws BAD_USER_INPUT for invalid data and
   * PUBLISH_FAILED when the bus refuses it.
   */
  publish<T extends EventType>(
    type: T,
    data: EventDataInput<T>,
    /** `source` labels tidings_events_published_total: `mutation` (the default) or `chat_responder`. */
    options?: { occurredAt?: string; source?: 'mutation' | 'chat_responder' },
  ): Promise<EventEnvelope<T>>;
}

export function createEventPublisher(deps: { bus: EventBus; logger: Logger; metrics: GatewayMetrics; now?: () => Date }): EventPublisher {
  const now = deps.now ?? (() => new Date());
  return {
    async publish(type, data, options) {
      const built = buildEvent(type, data, { occurredAt: options?.occurredAt, now });
      if (!built.ok) throw badUserInput(`Invalid ${type} event: ${built.issues.join('; ')}`, built.issues);
      const { event } = built;
      try {
        await deps.bus.publish(event as TidingsEvent);
      } catch (error) {
        deps.logger.error({ err: error, eventId: event.id, eventType: type }, 'publish failed');
        throw publishFailed();
      }
      deps.metrics.eventsPublished.inc({ type, source: options?.source ?? 'mutation' });
      return event;
    },
  };
}
