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
  /** WebSocket closes by close code, whoever closed: protocol violations, expiry, limits, shutdown. */
  readonly websocketCloses: Counter<'code'>;
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
    websocketCloses: new Counter({
      name: 'tidings_websocket_closes_total',
      help: 'WebSocket connections closed, by close code (4400 invalid message, 4403 auth, 4408 init timeout, 4290-4292 limits, 1001 shutdown, 1006 dropped, ...).',
      labelNames: ['code'] as const,
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
