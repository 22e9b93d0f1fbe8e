import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisKeys } from '../redis/keys.js';
import { defineScript } from '../redis/scripts.js';

export interface RateBudget {
  /** Names the budget in keys, errors and metrics, e.g. `operations`, `chat`. */
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
}

export interface RateDecision {
  readonly allowed: boolean;
  /** When the oldest counted request leaves the window (0 when allowed). */
  readonly retryAfterMs: number;
}

/** A sliding-window log per key: at most `limit` requests in any `windowMs`. */
export interface RateLimiter {
  consume(key: string, budget: RateBudget): Promise<RateDecision>;
}

/** Single instance: a bounded log of timestamps per key (never more than `limit` entries). */
export function createMemoryRateLimiter(now: () => number = Date.now): RateLimiter {
  const logs = new Map<string, number[]>();
  let lastSweep = now();
  return {
    async consume(key, budget) {
      const at = now();
      if (at - lastSweep > 60_000) {
        for (const [logKey, log] of logs) if ((log.at(-1) ?? 0) < at - 3_600_000) logs.delete(logKey);
        lastSweep = at;
      }
      const logKey = `${budget.name}:${key}`;
      const log = (logs.get(logKey) ?? []).filter((timestamp) => timestamp > at - budget.windowMs);
      if (log.length >= budget.limit) {
        logs.set(logKey, log);
        return { allowed: false, retryAfterMs: (log[0] as number) + budget.windowMs - at };
      }
      log.push(at);
      logs.set(logKey, log);
      return { allowed: true, retryAfterMs: 0 };
    },
  };
}

/**
 * The same log in a Redis sorted set, so a budget holds across every instance. One atomic script
 * per request, timed by the Redis server's clock so instances with skewed clocks agree.
 */
const SLIDING_WINDOW_SCRIPT = `
local key = KEYS[1]
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, now .. '-' .. time[2] .. '-' .. ARGV[3])
  redis.call('PEXPIRE', key, window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
`;

export function createRedisRateLimiter(options: { redis: Redis; prefix: string; logger: Logger }): RateLimiter {
  let sequence = 0;
  const slidingWindow = defineScript(options.redis, 'tidingsSlidingWindow', SLIDING_WINDOW_SCRIPT, 1);
  return {
    async consume(key, budget) {
      try {
        const [allowed, retryAfterMs] = (await slidingWindow(
          redisKeys(options.prefix).rateLimit(budget.name, key),
          budget.windowMs,
          budget.limit,
          (sequence = (sequence + 1) % 1_000_000),
        )) as [number, number];
        return { allowed: allowed === 1, retryAfterMs: Math.max(0, retryAfterMs) };
      } catch (error) {
        // Fail open: a Redis outage must not lock every user out; it is logged and visible in readiness.
        options.logger.warn({ err: error instanceof Error ? error.message : String(error), budget: budget.name }, 'rate limiter unavailable; allowing');
        return { allowed: true, retryAfterMs: 0 };
      }
    },
  };
}
