import { afterAll } from 'vitest';
import { randomPrefix, startRedis, type TestRedis } from './redis-server.js';

/** The two pub/sub implementations every contract test runs against. */
export const BACKENDS = ['memory', 'redis'] as const;
export type BackendName = (typeof BACKENDS)[number];

let redis: TestRedis | undefined;

/** One private redis-server per test file, started on first use, stopped after the file. */
export async function sharedRedis(): Promise<TestRedis> {
  redis ??= await startRedis();
  return redis;
}

afterAll(async () => {
  await redis?.stop();
  redis = undefined;
});

/** Environment for a gateway on the given backend; Redis gets a fresh random prefix each call. */
export async function backendEnv(backend: BackendName): Promise<Record<string, string>> {
  if (backend === 'memory') return {};
  return { REDIS_URL: (await sharedRedis()).url, REDIS_PREFIX: randomPrefix() };
}
