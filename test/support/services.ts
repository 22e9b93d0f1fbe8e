import type { Logger } from 'pino';
import { createMemoryPresenceStore } from '../../src/presence/memory-presence-store.js';
import { PresenceTracker } from '../../src/presence/presence-tracker.js';
import { pino } from 'pino';
import { onTestFinished } from 'vitest';
import type { EventBus } from '../../src/bus/event-bus.js';
import { createMemoryEventBus } from '../../src/bus/memory-event-bus.js';
import { createRedisEventBus } from '../../src/bus/redis-event-bus.js';
import { createExternalChatBackend } from '../../src/chat/chat-backend.js';
import type { AccessDirectory } from '../../src/directory/directory.js';
import { createMemoryDirectory } from '../../src/directory/memory-directory.js';
import { createRedisDirectory } from '../../src/directory/redis-directory.js';
import { createMetrics, type GatewayMetrics } from '../../src/metrics/metrics.js';
import { createEventPublisher } from '../../src/publish/event-publisher.js';
import { createTypingThrottle } from '../../src/publish/typing-throttle.js';
import { createRedisConnections } from '../../src/redis/connections.js';
import type { GatewayServices } from '../../src/schema/context.js';
import { createMemorySessionRevocations } from '../../src/sessions/session-revocations.js';
import { sharedRedis, type BackendName } from './backends.js';
import { randomPrefix } from './redis-server.js';
import { waitUntil } from './wait.js';

export interface BackendParts {
  readonly bus: EventBus;
  readonly directory: AccessDirectory;
  readonly metrics: GatewayMetrics;
  /** Resolves once `topic` is subscribed upstream too (Redis sends no acknowledgement). */
  waitForUpstream(topic: string): Promise<void>;
}

/** The bus and directory of one backend, without a server; closed when the test ends. */
export async function backendParts(backend: BackendName): Promise<BackendParts> {
  const metrics = createMetrics();
  if (backend === 'memory') {
    return { bus: createMemoryEventBus(), directory: createMemoryDirectory(), metrics, waitForUpstream: async () => undefined };
  }
  const redis = await sharedRedis();
  const logger = pino({ level: 'silent' });
  const prefix = randomPrefix();
  const connections = createRedisConnections(redis.url, logger);
  const bus = createRedisEventBus({ connections, prefix, maxEventBytes: 65_536, logger, metrics });
  const directory = createRedisDirectory({ connections, prefix, logger, metrics, membershipCacheMs: 30_000, chatSessionTtlSeconds: 3_600 });
  const inspector = redis.client();
  onTestFinished(async () => {
    await bus.close();
    await directory.close();
    await connections.close();
  });
  await waitUntil(() => directory.isReady() && bus.isReady(), 'redis connections');
  return {
    bus,
    directory,
    metrics,
    async waitForUpstream(topic) {
      await waitUntil(async () => {
        const [, count] = (await inspector.pubsub('NUMSUB', `${prefix}${topic}`)) as [string, number];
        return count > 0;
      }, `SUBSCRIBE ${topic}`);
    },
  };
}

/** GatewayServices on a backend, as the composition root would build them. */
export async function servicesOn(backend: BackendName): Promise<GatewayServices> {
  return servicesFrom(await backendParts(backend));
}

/** GatewayServices around a backend's parts (see backendParts). */
export function servicesFrom({ bus, directory, metrics }: Pick<Awaited<ReturnType<typeof backendParts>>, 'bus' | 'directory' | 'metrics'>): GatewayServices {
  const logger = pino({ level: 'silent' });
  const publisher = createEventPublisher({ bus, logger, metrics, maxBatch: 1_000 });
  return {
    bus,
    publisher,
    directory,
    chat: createExternalChatBackend(publisher),
    typingThrottle: createTypingThrottle(0),
    revocations: createMemorySessionRevocations({ ttlMs: 60_000 }),
    presence: servicePresence(logger),
    logger,
  };
}

/** Presence in memory for services built without the composition root (stopped with the test). */
function servicePresence(logger: Logger): GatewayServices['presence'] {
  const tracker = new PresenceTracker({
    store: createMemoryPresenceStore({ instanceId: 'test', ttlMs: 30_000 }),
    graceMs: 0,
    coalesceMs: 0,
    heartbeatMs: 10_000,
    sweepMs: 5_000,
    announce: async () => undefined,
    logger,
  });
  onTestFinished(() => tracker.close());
  return {
    hold: (scope, userId) => tracker.hold(scope, userId),
    watch: (scope) => tracker.watch(scope),
    present: (scope) => tracker.present(scope),
    online: (userIds) => tracker.online(userIds),
    maxUserIds: 100,
  };
}
