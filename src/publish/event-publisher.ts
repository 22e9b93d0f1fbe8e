import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import {
  EVENT_VERSION,
  parseEventData,
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
    options?: { occurredAt?: string },
  ): Promise<EventEnvelope<T>>;
}

export function createEventPublisher(deps: { bus: EventBus; logger: Logger; metrics: GatewayMetrics; now?: () => Date }): EventPublisher {
  const now = deps.now ?? (() => new Date());
  return {
    async publish(type, data, options) {
      const parsed = parseEventData(type, data);
      if (!parsed.ok) throw badUserInput(`Invalid ${type} event: ${parsed.issues.join('; ')}`, parsed.issues);
      const event = {
        id: randomUUID(),
        type,
        version: EVENT_VERSION,
        occurredAt: options?.occurredAt ?? now().toISOString(),
        data: parsed.data,
      } as EventEnvelope<typeof type>;
      try {
        await deps.bus.publish(event as TidingsEvent);
      } catch (error) {
        deps.logger.error({ err: error, eventId: event.id, eventType: type }, 'publish failed');
        throw publishFailed();
      }
      deps.metrics.eventsPublished.inc({ type, source: 'gateway' });
      return event;
    },
  };
}
