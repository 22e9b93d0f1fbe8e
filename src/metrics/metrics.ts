import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type DropReason = 'too_large' | 'invalid_json' | 'shape' | 'unknown_type' | 'version' | 'topic_mismatch';

/** What the live-connection gauges read at scrape time (see Presence). */
export interface PresenceSnapshot {
  readonly connections: Readonly<Record<string, number>>;
  readonly uniqueUsers: number;
  readonly subscriptions: Readonly<Record<string, number>>;
}

/**
 * The gateway's Prometheus metrics, on a registry owned by the composition root (no global
 * default registry, so tests and several apps in one process never share counters). Every name
 * is described in docs/OPERATIONS.md.
 */
export interface GatewayMetrics {
  readonly registry: Registry;
  /** Events this instance published, by type and source (`mutation`, `chat_responder`). */
  readonly eventsPublished: Counter<'type' | 'source'>;
  /** Events that arrived from the bus on this instance, by type and source (`gateway`, `redis`). */
  readonly eventsReceived: Counter<'type' | 'source'>;
  /** Results handed to subscribers' transports, by subscription field. */
  readonly eventsDelivered: Counter<'field'>;
  readonly eventsDropped: Counter<'reason' | 'source'>;
  /** From an event's occurredAt to its hand-off to this instance's subscribers. */
  readonly deliveryLatency: Histogram<'type'>;
  /** Every refused request or closed connection because a limit was reached. */
  readonly limitTrips: Counter<'limit'>;
  /** WebSocket closes by close code, whoever closed: protocol violations, expiry, limits, shutdown. */
  readonly websocketCloses: Counter<'code'>;
  readonly authFailures: Counter<'reason' | 'transport'>;
  readonly redisUp: Gauge<'connection'>;
  readonly redisReconnects: Counter<'connection'>;
  /** Reads the live connection and subscription counts at scrape time. */
  observePresence(snapshot: () => PresenceSnapshot): void;
}

export function createMetrics(options: { processMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  let presence: (() => PresenceSnapshot) | undefined;

  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], read: (gauge: Gauge<L>, snapshot: PresenceSnapshot) => void) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        if (presence) read(this, presence());
      },
    });
  gauge('tidings_connections', 'Open client connections (WebSocket connections, SSE streams) on this instance, by transport.', ['transport'] as const, (metric, snapshot) => {
    for (const transport of ['websocket', 'sse']) metric.set({ transport }, snapshot.connections[transport] ?? 0);
  });
  gauge('tidings_connected_users', 'Distinct authenticated users with at least one open connection on this instance.', [] as const, (metric, snapshot) =>
    metric.set(snapshot.uniqueUsers),
  );
  gauge('tidings_subscriptions', 'Active subscriptions on this instance, by root field.', ['field'] as const, (metric, snapshot) => {
    for (const [field, count] of Object.entries(snapshot.subscriptions)) metric.set({ field }, count);
  });

  return {
    registry,
    observePresence(snapshot) {
      presence = snapshot;
    },
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
      help: 'Events this instance published, by event type and source (mutation, chat_responder).',
      labelNames: ['type', 'source'] as const,
      registers: [registry],
    }),
    eventsReceived: new Counter({
      name: 'tidings_events_received_total',
      help: 'Valid events that arrived from the bus on this instance (only topics it has subscribers for), by type and source: gateway (a mutation on any instance) or redis (a service publishing on the channel).',
      labelNames: ['type', 'source'] as const,
      registers: [registry],
    }),
    eventsDelivered: new Counter({
      name: 'tidings_events_delivered_total',
      help: 'Subscription results handed to a client connection, by subscription field.',
      labelNames: ['field'] as const,
      registers: [registry],
    }),
    eventsDropped: new Counter({
      name: 'tidings_events_dropped_total',
      help: 'Events not delivered, by reason (invalid: too_large, invalid_json, shape, unknown_type, version, topic_mismatch; unauthorized_field; conflated; slow_consumer) and source.',
      labelNames: ['reason', 'source'] as const,
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: 'tidings_delivery_latency_seconds',
      help: "Time from an event's occurredAt to its hand-off to this instance's subscribers, by event type.",
      labelNames: ['type'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'tidings_auth_failures_total',
      help: 'Refused credentials, by reason (missing, malformed, expired, bad_signature, bad_claims, unavailable, revoked) and transport.',
      labelNames: ['reason', 'transport'] as const,
      registers: [registry],
    }),
    redisUp: new Gauge({
      name: 'tidings_redis_up',
      help: 'Whether each Redis connection (commands, subscriber) is ready: 1 or 0. Absent without REDIS_URL.',
      labelNames: ['connection'] as const,
      registers: [registry],
    }),
    redisReconnects: new Counter({
      name: 'tidings_redis_reconnects_total',
      help: 'Times a Redis connection became ready again after being lost.',
      labelNames: ['connection'] as const,
      registers: [registry],
    }),
  };
}

/** Counts an event arriving at this instance's subscribers and how long it took since occurredAt. */
export function recordArrival(metrics: GatewayMetrics, event: { type: string; occurredAt: string }, source: 'gateway' | 'redis'): void {
  metrics.eventsReceived.inc({ type: event.type, source });
  const latencySeconds = (Date.now() - Date.parse(event.occurredAt)) / 1000;
  // A publisher's clock may run ahead; a negative latency says nothing useful.
  if (latencySeconds >= 0) metrics.deliveryLatency.observe({ type: event.type }, latencySeconds);
}
