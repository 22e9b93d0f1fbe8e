import { Redis } from 'ioredis';
import { onTestFinished } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { mintToken } from '../../src/auth/dev-tokens.js';
import { loadConfig, type Role } from '../../src/config/config.js';
import { waitUntil } from './wait.js';

export const TEST_JWT_SECRET = 'tidings-test-secret-0123456789-abcdefghijklmnop';

export function testConfig(env: Record<string, string> = {}) {
  return loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    METRICS_PORT: '0',
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_JWT_SECRET,
    CHAT_CHUNK_DELAY_MS: '2',
    TYPING_THROTTLE_MS: '0',
    JWT_CLOCK_TOLERANCE_SECONDS: '0',
    ...env,
  });
}

export function tokenFor(sub: string, roles: Role[] = ['user'], options: { expiresInSeconds?: number; secret?: string } = {}) {
  return mintToken({
    secret: new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET),
    sub,
    roles,
    expiresInSeconds: options.expiresInSeconds,
  });
}

export interface TestGateway {
  readonly app: App;
  readonly httpUrl: string;
  readonly wsUrl: string;
  /** The operator listener (/metrics, /stats). */
  readonly opsUrl: string;
  /** Runs a GraphQL operation over real HTTP and returns the parsed JSON body and status. */
  http(query: string, variables?: Record<string, unknown>, token?: string): Promise<{ status: number; body: GraphQLBody }>;
  /** Same, as a role `service` caller; throws if the response carries errors. */
  publish(query: string, variables?: Record<string, unknown>): Promise<GraphQLBody>;
  /** Resolves once `count` local subscribers listen on `topic` (there is no "subscribed" ack). */
  waitForSubscribers(topic: string, count?: number): Promise<void>;
}

export interface GraphQLBody {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown>; path?: unknown[] }>;
}

/**
 * Starts a real gateway on a free port, stopped automatically when the test ends. With
 * REDIS_URL in `env` it uses Redis, and waitForSubscribers also waits for the channel's
 * SUBSCRIBE to reach Redis (PUBSUB NUMSUB), since Redis sends no acknowledgement.
 */
export async function startGateway(env: Record<string, string> = {}, overrides: Parameters<typeof buildApp>[1] = {}): Promise<TestGateway> {
  const app = buildApp(testConfig(env), overrides);
  const { port, opsUrl } = await app.start();
  await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 'the gateway to be ready');
  const inspector = env['REDIS_URL'] ? new Redis(env['REDIS_URL'], { maxRetriesPerRequest: 1 }) : undefined;
  inspector?.on('error', () => undefined);
  onTestFinished(async () => {
    await app.stop();
    inspector?.disconnect();
  });
  const httpUrl = `http://127.0.0.1:${port}/graphql`;
  const serviceToken = await tokenFor('booking-service', ['service']);

  const http: TestGateway['http'] = async (query, variables, token) => {
    const response = await fetch(httpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, body: (await response.json()) as GraphQLBody };
  };

  return {
    app,
    httpUrl,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    opsUrl,
    http,
    async publish(query, variables) {
      const { body } = await http(query, variables, serviceToken);
      if (body.errors?.length) throw new Error(`publish failed: ${JSON.stringify(body.errors)}`);
      return body;
    },
    async waitForSubscribers(topic, count = 1) {
      await waitUntil(() => app.services.bus.subscriberCount(topic) >= count, `${count} subscriber(s) on ${topic}`);
      if (inspector) {
        const channel = `${app.config.redis.prefix}${topic}`;
        await waitUntil(async () => {
          const [, subscribed] = (await inspector.pubsub('NUMSUB', channel)) as [string, number];
          return subscribed >= 1;
        }, `redis SUBSCRIBE to ${channel}`);
      }
    },
  };
}
