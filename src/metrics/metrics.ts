import { getHeapStatistics } from 'node:v8';
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
  /** Operations refused by TRUSTED_DOCUMENTS before parsing, by reason (`document_text`, `no_hash`, `unknown_hash`) and transport. */
  readonly trustedDocumentRefusals: Counter<'reason' | 'transport'>;
  readonly redisUp: Gauge<'connection'>;
  readonly redisReconnects: Counter<'connection'>;
  /** RabbitMQ ingress (src/ingress/): messages taken from the queue, by kind of routing key. */
  readonly amqpConsumed: Counter<'kind'>;
  /** Poison messages moved to the dead-letter queue, by reason. */
  readonly amqpDeadLettered: Counter<'reason'>;
  /** Messages the broker delivered again (after a consumer or connection was lost). */
  readonly amqpRedelivered: Counter;
  /** Messages whose event had already been published (a redelivery): acknowledged, not published again. */
  readonly amqpDuplicates: Counter;
  /** Messages handed back to the queue because their event could not be published (Redis down). */
  readonly amqpRequeued: Counter;
  /** Presence changes this instance announced, by scope (`conversation`, `user`) and change (`JOINED`, `LEFT`). */
  readonly presenceChanges: Counter<'scope' | 'change'>;
  /** Presence store calls (Redis) that failed; the heartbeat rebuilds what they missed. */
  readonly presenceStoreErrors: Counter;
  /** Reads at scrape time the presence this instance holds: users per scope kind. */
  observePresenceHolds(read: () => { readonly conversation: number; readonly user: number }): void;
  /** Whether this instance is consuming the ingress queue: 1 or 0. Absent without AMQP_URL. */
  readonly amqpConsumerUp: Gauge<'queue'>;
  /** Adds `count` to eventsDelivered for `field` (batched: see PendingCounts). */
  countDelivered(field: string, count: number): void;
  /** Adds an arrival to eventsReceived and its latency to deliveryLatency (batched: see PendingCounts). */
  countArrival(type: string, source: 'gateway' | 'redis', latencySeconds: number): void;
  /** Reads the live connection and subscription counts at scrape time. */
  observePresence(snapshot: () => PresenceSnapshot): void;
  /** Reads at scrape time whether this instance is ready (what `/ready` answers). */
  observeReadiness(ready: () => boolean): void;
}

export function createMetrics(options: { processMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  let presence: (() => PresenceSnapshot) | undefined;
  let readiness: (() => boolean) | undefined;
  let presenceHolds: (() => { readonly conversation: number; readonly user: number }) | undefined;
  new Gauge({
    name: 'tidings_presence_holds',
    help: 'Presence this instance holds and keeps alive: (user, conversation) pairs for scope="conversation", users online through it for scope="user".',
    labelNames: ['scope'] as const,
    registers: [registry],
    collect() {
      const holds = presenceHolds?.();
      this.set({ scope: 'conversation' }, holds?.conversation ?? 0);
      this.set({ scope: 'user' }, holds?.user ?? 0);
    },
  });

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

  new Gauge({
    name: 'tidings_ready',
    help: 'Whether this instance is ready (GET /ready answers 200): 1 or 0. 0 while starting, without Redis, and while shutting down.',
    registers: [registry],
    collect() {
      this.set(readiness?.() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tidings_memory_limit_bytes',
    help: "The memory this process may use, by limit: heap (V8's heap limit) and container (the cgroup's limit; absent when there is none). For alerts on process_resident_memory_bytes and nodejs_heap_size_used_bytes.",
    labelNames: ['limit'] as const,
    registers: [registry],
    collect() {
      this.set({ limit: 'heap' }, getHeapStatistics().heap_size_limit);
      // Node reports an unconstrained cgroup as 0 or as a huge number: neither is a limit.
      const container = process.constrainedMemory?.() ?? 0;
      if (container > 0 && container < 2 ** 50) this.set({ limit: 'container' }, container);
    },
  });

  // The per-event metrics: counted here, handed to prom-client when it reads them.
  const delivered = new PendingCounts();
  // By type, one set per source: no key string to build per event.
  const received = { gateway: new PendingCounts(), redis: new PendingCounts() };
  const latencies = new PendingObservations((type, seconds) => deliveryLatency.observe({ type }, seconds));
  const eventsReceived = new Counter({
    name: 'tidings_events_received_total',
    help: 'Valid events that arrived from the bus on this instance (only topics it has subscribers for), by type and source: gateway (a mutation on any instance) or redis (a service publishing on the channel).',
    labelNames: ['type', 'source'] as const,
    registers: [registry],
    collect() {
      for (const source of ['gateway', 'redis'] as const) received[source].drain((type, count) => this.inc({ type, source }, count));
    },
  });
  const eventsDelivered = new Counter({
    name: 'tidings_events_delivered_total',
    help: 'Subscription results handed to a client connection, by subscription field.',
    labelNames: ['field'] as const,
    registers: [registry],
    collect() {
      delivered.drain((field, count) => this.inc({ field }, count));
    },
  });
  const deliveryLatency = new Histogram({
    name: 'tidings_delivery_latency_seconds',
    help: "Time from an event's occurredAt to its hand-off to this instance's subscribers, by event type.",
    labelNames: ['type'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
    collect() {
      latencies.drain();
    },
  });

  return {
    registry,
    observePresence(snapshot) {
      presence = snapshot;
    },
    observeReadiness(ready) {
      readiness = ready;
    },
    observePresenceHolds(read) {
      presenceHolds = read;
    },
    presenceChanges: new Counter({
      name: 'tidings_presence_changes_total',
      help: 'Presence changes this instance announced, by scope (conversation, user) and change (JOINED, LEFT).',
      labelNames: ['scope', 'change'] as const,
      registers: [registry],
    }),
    presenceStoreErrors: new Counter({
      name: 'tidings_presence_store_errors_total',
      help: 'Presence store (Redis) calls that failed; the heartbeat rebuilds what they missed.',
      registers: [registry],
    }),
    countDelivered(field, count) {
      delivered.add(field, count);
    },
    countArrival(type, source, latencySeconds) {
      received[source].add(type, 1);
      // A publisher's clock may run ahead; a negative latency says nothing useful.
      if (latencySeconds >= 0) latencies.add(type, latencySeconds);
    },
    eventsReceived,
    eventsDelivered,
    deliveryLatency,
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
      help: 'Events this instance published, by event type and source (mutation, chat_responder, amqp, presence).',
      labelNames: ['type', 'source'] as const,
      registers: [registry],
    }),
    eventsDropped: new Counter({
      name: 'tidings_events_dropped_total',
      help: 'Events not delivered, by reason (invalid: too_large, invalid_json, shape, unknown_type, version, topic_mismatch; unauthorized_field; conflated; slow_consumer) and source.',
      labelNames: ['reason', 'source'] as const,
      registers: [registry],
    }),
    trustedDocumentRefusals: new Counter({
      name: 'tidings_trusted_document_refusals_total',
      help: 'Operations refused by TRUSTED_DOCUMENTS before parsing, by reason (document_text, no_hash, unknown_hash) and transport (http, sse, websocket).',
      labelNames: ['reason', 'transport'] as const,
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
    amqpConsumed: new Counter({
      name: 'tidings_amqp_messages_consumed_total',
      help: 'RabbitMQ messages this instance took from the ingress queue, by kind (message_sent, booking, notification_created, price_updated, other).',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    amqpDeadLettered: new Counter({
      name: 'tidings_amqp_messages_dead_lettered_total',
      help: 'RabbitMQ messages moved to the dead-letter queue, by reason (too_large, invalid_json, unknown_routing_key, shape, version, unknown_booking, party_mismatch).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    amqpRedelivered: new Counter({
      name: 'tidings_amqp_messages_redelivered_total',
      help: 'RabbitMQ messages the broker delivered again (their consumer or connection was lost before they were acknowledged).',
      registers: [registry],
    }),
    amqpDuplicates: new Counter({
      name: 'tidings_amqp_messages_duplicate_total',
      help: 'RabbitMQ messages whose event had already been published (redeliveries): acknowledged without publishing again.',
      registers: [registry],
    }),
    amqpRequeued: new Counter({
      name: 'tidings_amqp_messages_requeued_total',
      help: 'RabbitMQ messages handed back to the queue because their event could not be published (Redis unreachable) or looked up.',
      registers: [registry],
    }),
    amqpConsumerUp: new Gauge({
      name: 'tidings_amqp_consumer_up',
      help: 'Whether this instance is consuming the RabbitMQ ingress queue (AMQP_QUEUE): 1 or 0. Absent without AMQP_URL.',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
  };
}

/** Counts an event arriving at this instance's subscribers and how long it took since occurredAt. */
export function recordArrival(metrics: GatewayMetrics, event: { type: string; occurredAt: string }, source: 'gateway' | 'redis'): void {
  metrics.countArrival(event.type, source, (Date.now() - Date.parse(event.occurredAt)) / 1000);
}

/**
 * Counts by label key, kept as plain numbers and added to their prom-client counter when
 * prom-client reads it (the counter's `collect`, run on every scrape and `get()`). prom-client's
 * `inc` validates and hashes its labels and allocates on each call, which once per delivered
 * event cost more than the rest of the event's bookkeeping. The keys are bounded by the callers
 * (schema fields, event types).
 */
class PendingCounts {
  private readonly counts = new Map<string, number>();

  add(key: string, count: number): void {
    if (count !== 0) this.counts.set(key, (this.counts.get(key) ?? 0) + count);
  }

  drain(into: (key: string, count: number) => void): void {
    for (const [key, count] of this.counts) into(key, count);
    this.counts.clear();
  }
}

/**
 * Histogram observations by label key, handed to prom-client in batches: when a key has
 * OBSERVATION_BATCH of them, or when prom-client reads the histogram. At most a batch per key
 * waits, so memory stays bounded with or without scrapes.
 */
class PendingObservations {
  private readonly values = new Map<string, number[]>();

  constructor(private readonly observe: (key: string, value: number) => void) {}

  add(key: string, value: number): void {
    let list = this.values.get(key);
    if (!list) this.values.set(key, (list = []));
    list.push(value);
    if (list.length >= OBSERVATION_BATCH) this.flush(key, list);
  }

  drain(): void {
    for (const [key, list] of this.values) this.flush(key, list);
  }

  private flush(key: string, list: number[]): void {
    for (const value of list) this.observe(key, value);
    list.length = 0;
  }
}

const OBSERVATION_BATCH = 256;
