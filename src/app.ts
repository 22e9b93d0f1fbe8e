import { randomUUID } from 'node:crypto';
import type { Plugin } from 'graphql-yoga';
import type { GraphQLContext } from './schema/context.js';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createAuthenticator } from './auth/authenticator.js';
import { mintToken } from './auth/dev-tokens.js';
import { createTokenVerifier } from './auth/token-verifier.js';
import type { EventBus } from './bus/event-bus.js';
import { createMemoryEventBus } from './bus/memory-event-bus.js';
import { createBuiltinChatResponder } from './chat/builtin-responder.js';
import { createExternalChatBackend } from './chat/chat-backend.js';
import type { Config } from './config/config.js';
import type { AccessDirectory } from './directory/directory.js';
import { createMemoryDirectory } from './directory/memory-directory.js';
import { createLogger } from './logging/logger.js';
import { createMetrics, type GatewayMetrics } from './metrics/metrics.js';
import { MAX_PRESENCE_CHANGES } from './events/contracts.js';
import { Presence } from './observability/presence.js';
import { createMemoryPresenceStore } from './presence/memory-presence-store.js';
import { createRedisPresenceStore } from './presence/redis-presence-store.js';
import { splitScope, userScope } from './presence/presence-store.js';
import { PresenceTracker } from './presence/presence-tracker.js';
import { createRedisConnections } from './redis/connections.js';
import { createRedisEventBus } from './bus/redis-event-bus.js';
import { createRedisDirectory } from './directory/redis-directory.js';
import { createEventPublisher } from './publish/event-publisher.js';
import { createTypingThrottle } from './publish/typing-throttle.js';
import type { GatewayServices } from './schema/context.js';
import { buildSchema } from './schema/index.js';
import { deliveryRulesOf } from './schema/delivery.js';
import { createErrorMasker, createGatewayYoga, GRAPHQL_PATH, type GatewayYoga, type Readiness } from './server/yoga.js';
import { createAmqpIngress } from './ingress/amqp-ingress.js';
import { createEventTracing } from './observability/tracing.js';
import { createSharedDeliveries } from './transport/shared-delivery.js';
import { COMPILE_EVENT_DOCUMENTS_AFTER, createEventExecution } from './server/event-execution.js';
import { useSharedSseDeliveries } from './transport/sse-delivery.js';
import { createSubscriptionAdmission } from './server/subscription-admission.js';
import { attachWebSocketTransport, type WebSocketTransport } from './transport/websocket.js';
import { createWebAppHandler } from './web-app/web-app.js';
import { createGraphiQLPage } from './server/graphiql-page.js';
import { createOpsServer } from './observability/ops-server.js';
import { VERSION } from './version.js';
import { createClientAddressOf } from './transport/client-address.js';
import { refuseOversizedBody } from './transport/http-limits.js';
import { createInFlightOperations } from './server/use-in-flight.js';
import { createMemoryRateLimiter, createRedisRateLimiter } from './protection/rate-limiter.js';
import { createMemoryUserQuotas, createRedisUserQuotas } from './protection/user-quotas.js';
import { createMemorySessionRevocations, createRedisSessionRevocations } from './sessions/session-revocations.js';

export interface App {
  readonly config: Config;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly services: GatewayServices;
  readonly yoga: GatewayYoga;
  readonly httpServer: Server;
  /** Listens on config.http and config.ops; resolves with the GraphQL endpoint and the operator base URL. */
  start(): Promise<{ url: string; port: number; opsUrl: string }>;
  /** The /stats snapshot of this instance. */
  stats(): Record<string, unknown>;
  /** Graceful: stop accepting, tell WebSocket clients to reconnect (1001), drain, close backends. */
  stop(): Promise<void>;
  readonly webSockets: WebSocketTransport;
}

const FEATURE_NAMES: Readonly<Record<keyof Config['developmentFeatures'], string>> = {
  devTokens: 'GET /dev/token',
  graphiql: 'GraphiQL',
  introspection: 'introspection',
  errorDetails: 'error details',
};

/** One line: which development features are on, and what turned each on or left it off. */
function logDevelopmentFeatures(logger: Logger, features: Config['developmentFeatures']): void {
  const entries = Object.entries(features) as Array<[keyof Config['developmentFeatures'], Config['developmentFeatures'][keyof Config['developmentFeatures']]]>;
  const on = entries.filter(([, decision]) => decision.enabled).map(([name]) => FEATURE_NAMES[name]);
  const detail = Object.fromEntries(entries.map(([name, decision]) => [name, `${decision.enabled ? 'on' : 'off'} (${decision.because})`]));
  if (on.length === 0) logger.info({ developmentFeatures: detail }, 'development features: none on');
  else logger.warn({ developmentFeatures: detail }, `development features on: ${on.join(', ')}`);
}

/**
 * The composition root: builds every part from the configuration and wires them together.
 * Nothing else in src/ creates long-lived parts. Tests build apps with their own config.
 */
export function buildApp(
  config: Config,
  overrides: {
    logger?: Logger;
    bus?: EventBus;
    directory?: AccessDirectory;
    /**
     * An embedding application's own envelop plugins, after Tidings' own: they apply to every
     * operation on every transport. A subscription's per-event results are its shared
     * delivery's (one execution per group): `onNext` hooks see them over SSE only, and `onEnd`
     * runs once a WebSocket subscriber has joined its group. Per-event rules belong in the
     * schema (field authorization), which every group's execution applies.
     */
    plugins?: readonly Plugin<GraphQLContext>[];
    /**
     * graphql-js executions of a subscription document before its events run compiled
     * (src/server/event-execution.ts); tests set 0 to hold the compiled path to graphql-js.
     */
    compileEventDocumentsAfter?: number;
  } = {},
): App {
  const logger = overrides.logger ?? createLogger({ level: config.log.level, format: config.log.format, instanceId: config.instanceId });
  const metrics = createMetrics({ processMetrics: true });
  // OpenTelemetry (OTEL_EXPORTER_OTLP_ENDPOINT): spans for publishing and each instance's delivery.
  const tracing = config.tracing ? createEventTracing(config.tracing, { instanceId: config.instanceId, version: VERSION }) : undefined;
  // With REDIS_URL every instance shares events and access data through Redis; without it,
  // everything stays in this process (development, demos, a single instance).
  const redis = config.redis.url ? createRedisConnections(config.redis.url, logger, metrics) : undefined;
  const bus =
    overrides.bus ??
    (redis
      ? createRedisEventBus({ connections: redis, prefix: config.redis.prefix, maxEventBytes: config.events.maxBytes, logger, metrics, tracing })
      : createMemoryEventBus({ metrics, tracing }));
  const directory =
    overrides.directory ??
    (redis
      ? createRedisDirectory({ connections: redis, prefix: config.redis.prefix, logger, metrics, ...config.directory })
      : createMemoryDirectory());
  const publisher = createEventPublisher({ bus, logger, metrics, maxBatch: config.events.maxBatch, tracing });
  const chat =
    config.chat.responder === 'builtin'
      ? createBuiltinChatResponder({ publisher, logger, chunkDelayMs: config.chat.chunkDelayMs })
      : createExternalChatBackend(publisher);
  const revocations = redis
    ? createRedisSessionRevocations({ connections: redis, prefix: config.redis.prefix, ttlMs: config.sessions.revocationTtlSeconds * 1000, logger, metrics })
    : createMemorySessionRevocations({ ttlMs: config.sessions.revocationTtlSeconds * 1000 });
  // Presence (src/presence/): in Redis with REDIS_URL, kept alive by this instance's heartbeat
  // under an id of this run (a restarted instance's old entries expire rather than pass as its own).
  const presenceStoreOptions = { instanceId: `${config.instanceId}.${randomUUID().slice(0, 8)}`, ttlMs: config.presence.ttlMs };
  const presenceTracker = new PresenceTracker({
    store: redis ? createRedisPresenceStore({ redis: redis.commands, prefix: config.redis.prefix, ...presenceStoreOptions }) : createMemoryPresenceStore(presenceStoreOptions),
    graceMs: config.presence.graceMs,
    coalesceMs: config.presence.coalesceMs,
    heartbeatMs: Math.floor(config.presence.ttlMs / 3),
    sweepMs: Math.floor(config.presence.ttlMs / 6),
    maxChangesPerAnnouncement: MAX_PRESENCE_CHANGES,
    announce: async (scope, changes) => {
      const [kind, scopeId] = splitScope(scope);
      await publisher.publish(
        'presenceChanged',
        { scope: kind, scopeId, changes: changes.map((change) => ({ userId: change.userId, change: change.change, at: new Date(change.at).toISOString() })) },
        { source: 'presence' },
      );
    },
    logger,
    onAnnounced: (scope, changes) => {
      const kind = splitScope(scope)[0];
      for (const change of changes) metrics.presenceChanges.inc({ scope: kind, change: change.change });
    },
    onStoreError: () => metrics.presenceStoreErrors.inc(),
  });
  metrics.observePresenceHolds(() => presenceTracker.heldCounts());
  // Connections and subscriptions on this instance (gauges, /stats); a user's open connection
  // holds their online state.
  const presence = new Presence((userId) => presenceTracker.hold(userScope(userId), userId));
  metrics.observePresence(() => presence.snapshot());
  const services: GatewayServices = {
    bus,
    publisher,
    directory,
    chat,
    typingThrottle: createTypingThrottle(config.typing.throttleMs),
    revocations,
    presence: {
      hold: (scope, userId) => presenceTracker.hold(scope, userId),
      watch: (scope) => presenceTracker.watch(scope),
      present: (scope) => presenceTracker.present(scope),
      online: (userIds) => presenceTracker.online(userIds),
      maxUserIds: config.presence.maxUserIds,
    },
    logger,
  };

  const quotas = redis ? createRedisUserQuotas({ connections: redis, prefix: config.redis.prefix, logger }) : createMemoryUserQuotas();
  const authenticator = createAuthenticator(config.auth, createTokenVerifier(config.auth), revocations);
  const inFlight = createInFlightOperations();
  const clientAddressOf = createClientAddressOf(config.http.trustProxy);
  const rateLimiter = redis ? createRedisRateLimiter({ redis: redis.commands, prefix: config.redis.prefix, logger }) : createMemoryRateLimiter();
  const rateBudgets = {
    operations: { name: 'operations', limit: config.limits.rate.operations, windowMs: config.limits.rate.windowMs },
    chat: { name: 'chat', limit: config.limits.rate.chatMessages, windowMs: config.limits.rate.windowMs },
  };
  const admission = createSubscriptionAdmission({
    limiter: rateLimiter,
    budgets: rateBudgets,
    quotas,
    maxPerUser: config.limits.maxSubscriptionsPerUser,
    maxPerAddress: config.limits.maxSubscriptionsPerAddress,
    metrics,
  });
  // RabbitMQ ingress (AMQP_URL): events the services send to their exchange, published like a
  // mutation's. Bookings name one user, so their guest and host come from the directory.
  const amqpIngress = config.amqp
    ? createAmqpIngress({
        options: { ...config.amqp, instanceId: config.instanceId },
        publisher,
        mapping: {
          maxBytes: config.events.maxBytes,
          bookingCurrency: config.amqp.bookingCurrency,
          partiesOf: (bookingId) => directory.bookings.partiesOf(bookingId),
        },
        logger,
        metrics,
      })
    : undefined;
  let stopping: Promise<void> | undefined;
  /** What GET /ready answers, and tidings_ready: not once shutting down. */
  const isReady = () => stopping === undefined && bus.isReady() && directory.isReady();
  metrics.observeReadiness(isReady);
  const readiness = (): Readiness => ({
    ready: isReady(),
    components: {
      instance: stopping === undefined ? 'running' : 'shutting_down',
      pubsub: bus.isReady() ? 'up' : 'down',
      directory: directory.isReady() ? 'up' : 'down',
      // Not part of `ready`: subscribers are served while the broker is away, and it keeps the messages.
      ...(amqpIngress ? { amqp: amqpIngress.state() } : {}),
    },
  });
  const schema = buildSchema();
  const deliveryRules = deliveryRulesOf(schema);
  const sharedDeliveries = createSharedDeliveries({
    bus,
    metrics,
    logger,
    maskError: createErrorMasker(logger, config.errorDetails.enabled),
    shareable: deliveryRules.shareable,
    execution: createEventExecution({ compileAfter: overrides.compileEventDocumentsAfter ?? COMPILE_EVENT_DOCUMENTS_AFTER, logger }),
  });
  // GraphiQL's page and its static files (/graphiql/assets/), only while GraphiQL is enabled.
  const graphiql = config.graphiql.enabled ? createGraphiQLPage() : undefined;
  const yoga = createGatewayYoga({
    schema,
    services,
    authenticator,
    logger,
    graphiql,
    trustedDocuments: config.trustedDocuments?.documents,
    errorDetails: config.errorDetails.enabled,
    devTokenSecret: config.devTokens.enabled && config.auth.kind === 'secret' ? config.auth.secret : undefined,
    clockToleranceMs: config.auth.clockToleranceSeconds * 1000,
    inFlight,
    limits: config.limits,
    metrics,
    protection: {
      rateLimiter,
      rateBudgets,
      admission,
      revocations,
    },
    clientAddressOf,
    presence,
    readiness,
    sseDelivery: useSharedSseDeliveries(sharedDeliveries),
    plugins: overrides.plugins ?? [],
  });

  const webApp = config.webApp.enabled ? createWebAppHandler(config.webApp.directory) : undefined;
  const httpServer = createServer((request, response) => {
    refuseOversizedBody(request, response, config.limits.httpMaxBodyBytes, () => metrics.limitTrips.inc({ limit: 'http_body_bytes' }), () => {
      if (webApp?.handles(request)) webApp.serve(request, response);
      else if (graphiql?.assets.handles(request)) graphiql.assets.serve(request, response);
      else void yoga(request, response);
    });
  });
  const webSockets = attachWebSocketTransport({
    httpServer,
    yoga,
    authenticator,
    quotas,
    revocations,
    clientAddressOf,
    presence,
    sharedDeliveries,
    deliveryRules,
    logger,
    metrics,
    options: {
      path: GRAPHQL_PATH,
      ...config.websocket,
      clockToleranceMs: config.auth.clockToleranceSeconds * 1000,
      rateLimitStrikes: { windowMs: config.limits.rate.windowMs, disconnectAfter: config.limits.rate.disconnectAfter },
      trustedDocuments: config.trustedDocuments?.documents,
    },
  });

  const startedAt = new Date();
  const stats = () => ({
    instanceId: config.instanceId,
    version: VERSION,
    startedAt: startedAt.toISOString(),
    uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    ready: isReady(),
    pubsub: redis ? 'redis' : 'memory',
    redis: redis ? { commands: redis.commands.status, subscriber: redis.subscriber.status } : null,
    amqp: config.amqp && amqpIngress ? { state: amqpIngress.state(), exchange: config.amqp.exchange, queue: config.amqp.queue, deadLetterQueue: config.amqp.deadLetterQueue } : null,
    ...presence.snapshot(),
    // What this instance holds in the shared presence: (user, conversation) pairs, users online
    // through it, and the scopes it watches (and sweeps) for presence subscribers.
    presence: presenceTracker.heldCounts(),
    topics: bus.activeTopicCount(),
    sharedDeliveryGroups: webSockets.sharedGroupCount(),
  });
  const opsServer = createOpsServer({ registry: metrics.registry, stats, token: config.ops.token });

  return {
    config,
    metrics,
    logger,
    services,
    yoga,
    httpServer,
    webSockets,
    async start() {
      httpServer.listen(config.http.port, config.http.host);
      await once(httpServer, 'listening');
      opsServer.listen(config.ops.port, config.ops.host);
      await once(opsServer, 'listening');
      const { port } = httpServer.address() as AddressInfo;
      const opsAddress = opsServer.address() as AddressInfo;
      const opsHost = opsAddress.family === 'IPv6' ? `[${opsAddress.address}]` : opsAddress.address;
      const opsUrl = `http://${opsHost}:${opsAddress.port}`;
      const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? 'localhost' : config.http.host;
      const url = `http://${host}:${port}${GRAPHQL_PATH}`;
      logger.info({ url, metrics: `${opsUrl}/metrics`, stats: `${opsUrl}/stats`, pubsub: config.redis.url ? 'redis' : 'memory', environment: config.environment, version: VERSION }, 'Tidings is listening');
      logDevelopmentFeatures(logger, config.developmentFeatures);
      // In the background: a broker that is down does not hold up serving (docs/INGRESS.md).
      amqpIngress?.start();
      if (config.auth.kind === 'secret' && config.auth.isDevelopmentSecret) {
        logger.warn('JWT_SECRET is not set: using the public development secret. Never do this in production.');
        if (config.graphiql.enabled) {
          // The development secret is public anyway, so a ready-made token costs nothing and saves a step.
          const token = await mintToken({ secret: config.auth.secret, sub: 'developer', roles: ['user', 'admin', 'service'] });
          logger.info({ graphiql: `${url}?token=${token}` }, 'Open GraphiQL as "developer" (user, admin, service) for one hour');
        }
      }
      return { url, port, opsUrl };
    },
    stats,
    stop() {
      stopping ??= (async () => {
        logger.info('shutting down');
        const deadline = Date.now() + config.shutdown.timeoutMs;
        const remaining = () => Math.max(0, deadline - Date.now());
        const withinDeadline = (work: Promise<unknown>) =>
          Promise.race([work, new Promise((resolve) => setTimeout(resolve, remaining()).unref())]);

        // 1. Accept nothing new; idle keep-alive connections go now.
        const httpClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        // 2. Take no more RabbitMQ messages; those being published finish, the rest go back to
        //    the queue for another instance. Then tell WebSocket clients to reconnect elsewhere (1001).
        await amqpIngress?.stop(Math.min(remaining(), 2_000));
        await webSockets.close(Math.min(remaining(), 2_000));
        // 3. End every subscription and take no new ones: SSE responses complete, Redis
        //    channels are unsubscribed (bounded: Redis may be down).
        await withinDeadline(bus.close());
        // 4. Let in-flight queries and mutations (any transport) and streaming chat replies
        //    finish and publish, within the deadline, closing keep-alive connections as soon as
        //    their last response is done.
        const idleSweeper = setInterval(() => httpServer.closeIdleConnections(), 50);
        await withinDeadline(Promise.all([httpClosed, chat.drain(), inFlight.idle()]));
        clearInterval(idleSweeper);
        httpServer.closeAllConnections();
        await httpClosed;
        // 5. Only now let go of Redis (quota units held here are handed back first, and this
        //    instance's presence is handed over: it expires after the grace period, so users who
        //    reconnect elsewhere show no change).
        await withinDeadline(presenceTracker.close());
        revocations.close();
        await withinDeadline(quotas.close());
        await directory.close();
        await redis?.close(Math.max(remaining(), 200));
        // The spans of the last events, sent within what is left of the deadline.
        await withinDeadline(tracing?.shutdown().catch((error: unknown) => logger.warn({ err: String(error) }, 'traces not sent at shutdown')) ?? Promise.resolve());
        // Last: Prometheus may scrape until the very end.
        opsServer.closeAllConnections();
        await new Promise<void>((resolve) => opsServer.close(() => resolve()));
        logger.info('stopped');
      })();
      return stopping;
    },
  };
}
