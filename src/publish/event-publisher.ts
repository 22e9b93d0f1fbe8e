import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import {
  buildEvent,
  type EventDataInput,
  type EventEnvelope,
  type EventType,
  type TidingsEvent,
} from '../events/contracts.js';
import type { GraphQLError } from 'graphql';
import { badItem, badUserInput, itemPublishFailed, publishFailed } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { EventTracing } from '../observability/tracing.js';

/** The caller's W3C trace context (an HTTP `traceparent` header, an AMQP message header): the publish continues its trace. */
export interface PublishTrace {
  readonly traceparent?: string;
}

export interface EventPublisher {
  /**
   * Validates `data` against the event contract, wraps it in an envelope (new id, occurredAt
   * now unless given) and publishes it. Throws BAD_USER_INPUT for invalid data and
   * PUBLISH_FAILED when the bus refuses it.
   */
  publish<T extends EventType>(
    type: T,
    data: EventDataInput<T>,
    /** `source` labels tidings_events_published_total: `mutation` (the default), `chat_responder` or `presence`. */
    options?: { occurredAt?: string; source?: 'mutation' | 'chat_responder' | 'presence' } & PublishTrace,
  ): Promise<EventEnvelope<T>>;
  /**
   * Validates each item on its own and publishes the valid ones in one round trip, in order.
   * Each result is the item's envelope, or its coded error: BAD_USER_INPUT (with `index` and
   * `issues`) when invalid, PUBLISH_FAILED when the bus refused it. Throws BAD_USER_INPUT when
   * there are more than `maxBatch` items.
   */
  publishMany<T extends EventType>(
    type: T,
    items: ReadonlyArray<{ readonly data: EventDataInput<T>; readonly occurredAt?: string }>,
    trace?: PublishTrace,
  ): Promise<Array<EventEnvelope<T> | GraphQLError>>;
  /**
   * Publishes an event already built and validated by an ingress (its id derived from the
   * source message), unless the same id went out within `windowMs` (see EventBus.publishOnce).
   * Resolves true when published, false for a duplicate; throws PUBLISH_FAILED when the bus
   * refuses it.
   */
  publishOnce(event: TidingsEvent, options: { windowMs: number; source: 'amqp' } & PublishTrace): Promise<boolean>;
  /** The most items one publishMany takes (PUBLISH_MAX_BATCH). */
  readonly maxBatch: number;
}

export function createEventPublisher(deps: { bus: EventBus; logger: Logger; metrics: GatewayMetrics; maxBatch: number; tracing?: EventTracing; now?: () => Date }): EventPublisher {
  const now = deps.now ?? (() => new Date());
  /** A publish span when tracing, and the traceparent the events carry (the span's); without tracing, neither. */
  const traced = (type: string, source: string, trace: PublishTrace | undefined, attributes?: Record<string, string | number>) => {
    const span = deps.tracing?.startPublish(type, source, trace?.traceparent, attributes);
    return { span, traceparent: span?.traceparent };
  };
  return {
    maxBatch: deps.maxBatch,
    async publishMany(type, items, trace) {
      if (items.length > deps.maxBatch) throw badUserInput(`At most ${deps.maxBatch} items may be published at once (got ${items.length})`);
      // One span for the whole batch, never one per item.
      const { span, traceparent } = traced(type, 'mutation', trace, { 'tidings.events': items.length });
      const results: Array<EventEnvelope<typeof type> | GraphQLError> = [];
      const valid: Array<{ readonly index: number; readonly event: EventEnvelope<typeof type> }> = [];
      items.forEach((item, index) => {
        const built = buildEvent(type, item.data, { occurredAt: item.occurredAt, now, traceparent });
        if (built.ok) {
          valid.push({ index, event: built.event });
          results.push(built.event);
        } else {
          results.push(badItem(`Invalid ${type} event at index ${index}: ${built.issues.join('; ')}`, index, built.issues));
        }
      });
      let published: readonly boolean[];
      try {
        published = await deps.bus.publishMany(valid.map(({ event }) => event as TidingsEvent));
      } catch (error) {
        deps.logger.error({ err: error, eventType: type, count: valid.length }, 'bulk publish failed');
        published = valid.map(() => false);
      }
      valid.forEach(({ index, event }, position) => {
        if (published[position]) return;
        deps.logger.error({ eventId: event.id, eventType: type, index }, 'publish failed');
        results[index] = itemPublishFailed(index);
      });
      const count = published.filter(Boolean).length;
      if (count > 0) deps.metrics.eventsPublished.inc({ type, source: 'mutation' }, count);
      span?.end({ 'tidings.events.published': count, 'tidings.events.invalid': items.length - valid.length }, count < valid.length ? 'some events not published' : undefined);
      return results;
    },
    async publishOnce(event, options) {
      const { span, traceparent } = traced(event.type, options.source, options, { 'tidings.event.id': event.id });
      let published: boolean;
      try {
        published = await deps.bus.publishOnce(traceparent === undefined ? event : { ...event, traceparent }, options.windowMs);
      } catch (error) {
        // Debug only: an ingress retries until the bus is back and logs the outage once itself.
        deps.logger.debug({ err: error, eventId: event.id, eventType: event.type, source: options.source }, 'publish failed');
        span?.end(undefined, 'publish failed');
        throw publishFailed();
      }
      if (published) deps.metrics.eventsPublished.inc({ type: event.type, source: options.source });
      span?.end({ 'tidings.duplicate': !published });
      return published;
    },
    async publish(type, data, options) {
      const source = options?.source ?? 'mutation';
      const { span, traceparent } = traced(type, source, options);
      const built = buildEvent(type, data, { occurredAt: options?.occurredAt, now, traceparent });
      if (!built.ok) {
        span?.end(undefined, 'invalid event');
        throw badUserInput(`Invalid ${type} event: ${built.issues.join('; ')}`, built.issues);
      }
      const { event } = built;
      try {
        await deps.bus.publish(event as TidingsEvent);
      } catch (error) {
        deps.logger.error({ err: error, eventId: event.id, eventType: type }, 'publish failed');
        span?.end({ 'tidings.event.id': event.id }, 'publish failed');
        throw publishFailed();
      }
      deps.metrics.eventsPublished.inc({ type, source });
      span?.end({ 'tidings.event.id': event.id });
      return event;
    },
  };
}
