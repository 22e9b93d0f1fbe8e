import { Counter, Registry } from 'prom-client';

export type DropReason = 'too_large' | 'invalid_json' | 'shape' | 'unknown_type' | 'version' | 'topic_mismatch';

/**
 * The gateway's Prometheus metrics, on a registry owned by the composition root (no global
 * default registry, so tests and several apps in one process never share counters).
 */
export interface GatewayMetrics {
  readonly registry: Registry;
  readonly eventsPublished: Counter<'type' | 'source'>;
  readonly eventsDropped: Counter<'reason' | 'source'>;
  /** Every refused request or closed connection because a limit was reached. */
  readonly limitTrips: Counter<'limit'>;
}

export function createMetrics(): GatewayMetrics {
  const registry = new Registry();
  return {
    registry,
    limitTrips: new Counter({
      name: 'tidings_limit_trips_total',
      help: 'Requests refused or connections closed because a protection limit was reached, by limit.',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    eventsPublished: new Counter({
      name: 'tidings_events_published_total',
      help: 'Events this instance published (mutations and the built-in chat responder), by event type.',
      labelNames: ['type', 'source'] as const,
      registers: [registry],
    }),
    eventsDropped: new Counter({
      name: 'tidings_events_dropped_total',
      help: 'Events dropped on arrival before reaching any subscriber, by reason and source (redis channel or membership channel).',
      labelNames: ['reason', 'source'] as const,
      registers: [registry],
    }),
  };
}
