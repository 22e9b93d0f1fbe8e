import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { waitUntil } from './wait.js';

/**
 * A private redis-server for tests, on a free port (never the machine's 6379), that a test can
 * kill and restart on the same port for fault tests. Nothing is persisted.
 */
export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** A fresh client for inspecting the server (PUBSUB NUMSUB, raw PUBLISH); closed by stop(). */
  client(): Redis;
  /** SIGKILL, like a crash. */
  kill(): Promise<void>;
  /** Starts again on the same port, empty (killing the running server first, if there is one). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let process: ChildProcess | undefined;
  const clients: Redis[] = [];

  const launch = async () => {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--enable-debug-command', 'local'], {
      stdio: 'ignore',
    });
    process = child;
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      await waitUntil(async () => {
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          probe.disconnect();
          return false;
        }
      }, `redis-server on port ${port}`);
    } finally {
      probe.disconnect();
    }
  };

  const kill = async () => {
    const child = process;
    process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client() {
      const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    },
    kill,
    // Killed first: a second server on the port would fail to bind while the first, no longer
    // tracked, kept its data and outlived the test.
    async restart() {
      await kill();
      await launch();
    },
    async stop() {
      for (const client of clients) client.disconnect();
      await kill();
    },
  };
}

/** A random key and channel prefix, so tests sharing a Redis never see each other's data. */
export function randomPrefix(): string {
  return `test-${randomBytes(4).toString('hex')}:`;
}
