import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { freePort } from './redis-server.js';
import { waitUntil } from './wait.js';

/** An ingress topology of its own: exchange and queue names no other test run shares. */
export interface TestTopology {
  readonly exchange: string;
  readonly queue: string;
  readonly deadLetterQueue: string;
  /** The gateway's AMQP_* variables for this topology. */
  env(url: string): Record<string, string>;
  /** Deletes the exchanges and queues the gateway declared. */
  remove(url: string): Promise<void>;
}

export function testTopology(): TestTopology {
  const id = randomBytes(5).toString('hex');
  const exchange = `tidings-test-${id}`;
  const queue = `tidings-test-${id}.ingress`;
  const deadLetter = `${queue}.dead-letter`;
  return {
    exchange,
    queue,
    deadLetterQueue: deadLetter,
    env: (url) => ({ AMQP_URL: url, AMQP_EXCHANGE: exchange, AMQP_QUEUE: queue, AMQP_BOOKING_CURRENCY: 'EUR', AMQP_PREFETCH: '20' }),
    async remove(url) {
      const connection = await amqp.connect(url);
      try {
        const channel = await connection.createChannel();
        await channel.deleteQueue(queue);
        await channel.deleteQueue(deadLetter);
        await channel.deleteExchange(exchange);
        await channel.deleteExchange(deadLetter);
      } finally {
        await connection.close();
      }
    },
  };
}

/**
 * A service's publisher, exactly as the services Tidings replaces publish
 * (../shared/seeds/001: `EventBus`): a durable topic exchange, JSON, persistent.
 */
export interface ServiceEventBus {
  publish(routingKey: string, data: unknown): Promise<void>;
  /** Publishes raw bytes (poison messages). */
  publishRaw(routingKey: string, content: Buffer): Promise<void>;
  /**
   * Publishes many without waiting for each (as the services' EventBus does: it never waits for
   * a confirm), then waits until the broker has confirmed them all.
   */
  publishAll(routingKey: string, items: readonly unknown[]): Promise<void>;
  close(): Promise<void>;
}

export async function connectServiceEventBus(url: string, exchange: string): Promise<ServiceEventBus> {
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const send = async (routingKey: string, content: Buffer) => {
    channel.publish(exchange, routingKey, content, { persistent: true });
    await channel.waitForConfirms();
  };
  return {
    publish: (routingKey, data) => send(routingKey, Buffer.from(JSON.stringify(data))),
    publishRaw: send,
    async publishAll(routingKey, items) {
      for (const item of items) channel.publish(exchange, routingKey, Buffer.from(JSON.stringify(item)), { persistent: true });
      await channel.waitForConfirms();
    },
    async close() {
      await connection.close().catch(() => undefined);
    },
  };
}

/** Messages waiting in a queue (ready, not delivered to a consumer). */
export async function readyMessages(url: string, queue: string): Promise<number> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    return (await channel.checkQueue(queue)).messageCount;
  } finally {
    await connection.close();
  }
}

/** Takes every message waiting in `queue` (acknowledged: they are gone afterwards). */
export async function drainQueue(url: string, queue: string): Promise<amqp.GetMessage[]> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    const messages: amqp.GetMessage[] = [];
    for (let message = await channel.get(queue); message; message = await channel.get(queue)) {
      messages.push(message);
      channel.ack(message);
    }
    return messages;
  } finally {
    await connection.close();
  }
}

/**
 * A RabbitMQ node of the test's own (its own node name, ports and data directory), for fault
 * tests that stop and restart the broker; never the machine's. It boots in 10-40 s, so start one
 * per test file. Its data survives restart() (persistent messages in durable queues too).
 */
export interface TestRabbit {
  readonly url: string;
  /** Starts the node (the first time, or again after stop()). */
  start(): Promise<void>;
  /** Stops the node (SIGTERM: the broker shuts down and keeps what is durable). */
  stop(): Promise<void>;
  /** Stops and deletes its data directory. */
  remove(): Promise<void>;
  /** SIGKILLs the node at once, synchronously (for a process that is exiting). */
  killNow(): void;
}

export async function createTestRabbit(): Promise<TestRabbit> {
  const port = await freePort();
  const distributionPort = await freePort();
  const name = `tidings-test-${randomBytes(4).toString('hex')}`;
  const base = join(tmpdir(), name);
  for (const directory of ['mnesia', 'log']) mkdirSync(join(base, directory), { recursive: true });
  writeFileSync(join(base, 'enabled_plugins'), '[].\n');
  writeFileSync(join(base, 'rabbitmq.conf'), 'loopback_users.guest = true\n');
  const env = {
    ...process.env,
    HOME: base,
    RABBITMQ_NODENAME: `${name}@localhost`,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distributionPort),
    RABBITMQ_MNESIA_BASE: join(base, 'mnesia'),
    RABBITMQ_LOG_BASE: join(base, 'log'),
    RABBITMQ_FEATURE_FLAGS_FILE: join(base, 'feature_flags'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(base, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(base, 'rabbitmq.conf'),
    RABBITMQ_PID_FILE: join(base, 'pid'),
    // Crash dumps in the node's own directory (removed with it), never in the working directory.
    ERL_CRASH_DUMP: join(base, 'erl_crash.dump'),
  };
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const canConnect = async () => {
    try {
      const connection = await amqp.connect(url);
      await connection.close();
      return true;
    } catch {
      return false;
    }
  };
  /** The Erlang VM's pid: the script execs it, but the pid file is the broker's own word. */
  const brokerPid = () => {
    try {
      return Number(readFileSync(join(base, 'pid'), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  };

  const isRunning = () => {
    const pid = brokerPid();
    if (!pid) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  const stop = async () => {
    const pid = brokerPid();
    if (pid) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      await waitUntil(() => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, `RabbitMQ node ${name} to stop`, 60_000);
    }
    killGroup('SIGKILL');
    child = undefined;
    rmSync(join(base, 'pid'), { force: true });
  };
  /** The script and everything it started (it runs detached, as the leader of its own group). */
  const killGroup = (signal: NodeJS.Signals) => {
    if (!child?.pid) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };

  return {
    url,
    async start() {
      // A second node on the same name and ports would fail and could leave the first unowned.
      if (isRunning()) return;
      // The Debian script, run directly (the /usr/sbin wrapper switches to the rabbitmq user,
      // who could not write this directory).
      const started = spawn('/usr/lib/rabbitmq/bin/rabbitmq-server', [], { env, cwd: base, stdio: 'ignore', detached: true });
      child = started;
      let exited = false;
      started.once('exit', () => (exited = true));
      await waitUntil(async () => {
        if (exited) throw new Error(`RabbitMQ node ${name} exited while starting (see ${join(base, 'log')})`);
        return canConnect();
      }, `RabbitMQ node ${name} on port ${port}`, 90_000);
    },
    stop,
    async remove() {
      await stop();
      rmSync(base, { recursive: true, force: true });
    },
    killNow() {
      const pid = brokerPid();
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      killGroup('SIGKILL');
      rmSync(base, { recursive: true, force: true });
    },
  };
}
