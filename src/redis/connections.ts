import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { GatewayMetrics } from '../metrics/metrics.js';

/**
 * The two ioredis connections of an instance: `commands` publishes and reads keys, `subscriber`
 * is dedicated to SUBSCRIBE (a connection in subscriber mode can run nothing else).
 */
export interface RedisConnections {
  readonly commands: Redis;
  readonly subscriber: Redis;
  /** Both connections are up. Drives readiness. */
  isReady(): boolean;
  /** QUIT, waiting at most `graceMs` (QUIT never completes while Redis is unreachable), then disconnect. */
  close(graceMs?: number): Promise<void>;
}

/** Reconnect quickly at first, then every 2 s at most, forever: Redis outages end. */
const retryStrategy = (attempt: number) => Math.min(100 * attempt, 2_000);

export function createRedisConnections(url: string, logger: Logger, metrics?: GatewayMetrics): RedisConnections {
  const base: RedisOptions = { lazyConnect: false, connectTimeout: 2_000, retryStrategy };
  const commands = new Redis(url, {
    ...base,
    connectionName: 'tidings-commands',
    // Fail fast during an outage instead of queueing: a mutation must error within about a
    // second, not after ~10 s of retries (the defaults).
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  const subscriber = new Redis(url, {
    ...base,
    connectionName: 'tidings-subscriber',
    // ioredis issue 2037: a SUBSCRIBE sent during the ready check can be lost silently. Without
    // the ready check SUBSCRIBE goes out right after connect. The offline queue stays on so a
    // SUBSCRIBE during an outage is sent on reconnect; autoResubscribe restores the others.
    enableReadyCheck: false,
    // ioredis sends CLIENT SETINFO asynchronously after connecting, possibly after an early
    // SUBSCRIBE, when Redis refuses anything but pub/sub commands on this connection. Not sending
    // it keeps the handshake free of commands that can only fail.
    disableClientInfo: true,
    autoResubscribe: true,
    maxRetriesPerRequest: null,
  });

  for (const [name, connection] of [['commands', commands], ['subscriber', subscriber]] as const) {
    // Log state changes, not every failed reconnect attempt: an outage logs one error, not thousands.
    let lastError: string | undefined;
    connection.on('error', (error: Error) => {
      if (error.message === lastError) return;
      lastError = error.message;
      logger.warn({ redis: name, err: error.message }, 'redis connection error');
    });
    let readyBefore = false;
    metrics?.redisUp.set({ connection: name }, 0);
    connection.on('ready', () => {
      if (lastError) logger.info({ redis: name }, 'redis connection restored');
      lastError = undefined;
      metrics?.redisUp.set({ connection: name }, 1);
      if (readyBefore) metrics?.redisReconnects.inc({ connection: name });
      readyBefore = true;
    });
    connection.on('close', () => metrics?.redisUp.set({ connection: name }, 0));
    connection.on('end', () => logger.debug({ redis: name }, 'redis connection ended'));
  }

  return {
    commands,
    subscriber,
    isReady: () => commands.status === 'ready' && subscriber.status === 'ready',
    async close(graceMs = 1_000) {
      const quit = Promise.allSettled([commands.quit(), subscriber.quit()]);
      await Promise.race([quit, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
      // Also stops reconnect timers, which would otherwise keep the process alive.
      commands.disconnect();
      subscriber.disconnect();
    },
  };
}
