import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { topics } from '../src/events/topics.js';
import { startGateway, TEST_JWT_SECRET, tokenFor, type TestGateway } from './support/gateway.js';
import { counterValue } from './support/metrics.js';
import { NOTIFICATION_CREATED, VIEWER } from './support/operations.js';
import { connectServiceEventBus, createTestRabbit, testTopology, type TestRabbit, type TestTopology } from './support/rabbitmq.js';
import { randomPrefix, startRedis, type TestRedis } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record, type Recording } from './support/ws-client.js';

/**
 * RabbitMQ ingress faults, on a broker node this file starts and stops itself (never the
 * machine's): the broker down at start, restarted while messages wait, and a consuming instance
 * killed with messages in flight.
 */

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
let rabbit: TestRabbit;
let redis: TestRedis;
const topologies: TestTopology[] = [];

beforeAll(async () => {
  [rabbit, redis] = await Promise.all([createTestRabbit(), startRedis()]);
}, 30_000);

afterAll(async () => {
  await rabbit.start().catch(() => undefined);
  await Promise.all(topologies.map((topology) => topology.remove(rabbit.url).catch(() => undefined)));
  await Promise.all([rabbit.remove(), redis.stop()]);
}, 120_000);

function freshTopology(): TestTopology {
  const topology = testTopology();
  topologies.push(topology);
  return topology;
}

const amqpState = (gateway: TestGateway) => (gateway.app.stats()['amqp'] as { state: string }).state;

const notification = (index: number) => ({
  notificationId: `n-${index}`,
  userId: 'gina',
  type: 'message',
  title: `Notification ${index}`,
  message: 'hello',
  data: {},
  timestamp: new Date().toISOString(),
});

const notificationIds = (recording: Recording) =>
  recording.results.map((result) => (result.data?.['notificationCreated'] as { notificationId: string }).notificationId);

async function ginaListening(gateway: TestGateway): Promise<Recording> {
  const notifications = record(connectWs(gateway.wsUrl, await tokenFor('gina')).client, NOTIFICATION_CREATED);
  await gateway.waitForSubscribers(topics.userNotifications('gina'));
  return notifications;
}

describe('RabbitMQ ingress faults', () => {
  it('starts and serves with the broker down, says so in /ready, and consumes once the broker is up', async () => {
    const topology = freshTopology();
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), ...topology.env(rabbit.url) });
    // Serving: GraphQL answers and /ready is 200, naming what is down.
    const viewer = await gateway.http(VIEWER, {}, await tokenFor('gina'));
    expect(viewer.body.data?.['viewer']).toMatchObject({ id: 'gina' });
    const ready = await fetch(gateway.httpUrl.replace('/graphql', '/ready'));
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { components: Record<string, string> };
    expect(['connecting', 'disconnected']).toContain(body.components['amqp']);
    expect(await (await fetch(`${gateway.opsUrl}/metrics`)).text()).toContain(`tidings_amqp_consumer_up{queue="${topology.queue}"} 0`);
    const notifications = await ginaListening(gateway);

    await rabbit.start();
    await waitUntil(() => amqpState(gateway) === 'consuming', 'the ingress to consume once the broker is up', 30_000);
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    await service.publish('notification.created', notification(1));
    await service.close();
    await notifications.waitForResults(1);
    expect(notificationIds(notifications)).toEqual(['n-1']);
  }, 120_000);

  it('resumes by itself after a broker restart, and loses none of the persistent messages waiting', async () => {
    const topology = freshTopology();
    await rabbit.start();
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), ...topology.env(rabbit.url) });
    await waitUntil(() => amqpState(gateway) === 'consuming', 'the ingress to consume', 15_000);
    const notifications = await ginaListening(gateway);
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    // Ten delivered before the restart: none of them may come again after it.
    await service.publishAll('notification.created', Array.from({ length: 10 }, (_, index) => notification(100 + index)));
    await notifications.waitForResults(10);
    // With Redis away the next ones cannot be published: they wait in the queue, unacknowledged.
    await redis.kill();
    await service.publishAll('notification.created', Array.from({ length: 30 }, (_, index) => notification(index)));
    await service.close();
    await waitUntil(async () => (await counterValue(gateway.app, 'amqpRequeued')) >= 1, 'messages handed back while Redis is down', 10_000);

    await rabbit.stop();
    await waitUntil(() => amqpState(gateway) === 'disconnected', 'the ingress to notice the broker is gone', 15_000);
    await rabbit.start();
    await waitUntil(() => amqpState(gateway) === 'consuming', 'the ingress to consume again after the restart', 30_000);
    await redis.restart();
    // Held messages go back to the queue within the requeue delay (at most 5 s), then out.
    await waitUntil(() => notifications.results.length >= 40, '30 more notifications after Redis returned', 20_000).catch((error: Error) => {
      throw new Error(`${error.message}: got ${notificationIds(notifications).length}`);
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ids = notificationIds(notifications);
    expect(ids).toHaveLength(40);
    expect(new Set(ids).size).toBe(40);
  }, 120_000);

  it('hands the messages a killed instance held to another, which delivers each once', async () => {
    const topology = freshTopology();
    await rabbit.start();
    const prefix = randomPrefix();
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: prefix, ...topology.env(rabbit.url) };
    const survivor = await startGateway({ ...env, INSTANCE_ID: 'survivor' });
    await waitUntil(() => amqpState(survivor) === 'consuming', 'the surviving instance to consume', 15_000);
    const notifications = await ginaListening(survivor);

    // The other instance is a real process, so it can die as a process does: SIGKILL.
    const doomed = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: repoRoot,
      env: { PATH: process.env['PATH'], HOME: process.env['HOME'], NODE_ENV: 'test', JWT_SECRET: TEST_JWT_SECRET, PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', INSTANCE_ID: 'doomed', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((resolve) => doomed.once('exit', resolve));
    onTestFinished(async () => {
      if (doomed.exitCode === null && doomed.signalCode === null) doomed.kill('SIGKILL');
      await exited;
    });
    const logs: string[] = [];
    createInterface({ input: doomed.stdout as NodeJS.ReadableStream }).on('line', (line) => logs.push(line));
    await waitUntil(() => logs.some((line) => line.includes('consuming RabbitMQ events')), 'the doomed instance to consume', 30_000);

    const total = 3_000;
    const service = await connectServiceEventBus(rabbit.url, topology.exchange);
    await service.publishAll('notification.created', Array.from({ length: total }, (_, index) => notification(index)));
    await service.close();
    await waitUntil(() => notifications.results.length >= 300, 'the first notifications', 15_000);
    doomed.kill('SIGKILL');
    await exited;

    await waitUntil(() => new Set(notificationIds(notifications)).size === total, `all ${total} notifications`, 60_000).catch((error: Error) => {
      throw new Error(`${error.message}: got ${new Set(notificationIds(notifications)).size} distinct of ${notifications.results.length}`);
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(notifications.results).toHaveLength(total);
    // The killed instance held messages (its prefetch) when it died: the broker redelivered them here.
    expect(await counterValue(survivor.app, 'amqpRedelivered')).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
