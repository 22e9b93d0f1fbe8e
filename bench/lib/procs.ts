/** Child processes of a benchmark run: Redis, gateways, floor servers, load generators; /proc readings. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Command, OpenPlan } from '../load.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const children = new Set<ChildProcess>();

/** Kills every child still running (SIGKILL): used on exit, failure and SIGINT. */
export function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
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

/** CPU time (user + system) of a process in ms, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}
const CLK_TCK = 100;

/** Resident set size in bytes, from /proc/<pid>/status VmRSS. */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

/** The soft "Max open files" limit the process actually got. */
export function openFilesLimit(pid: number): number {
  const match = /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/** Runs `command` with the open-files limit raised as far as the hard limit allows (and tries beyond). */
function spawnWithLimits(command: string, env: NodeJS.ProcessEnv, stdio: ('ignore' | 'inherit' | 'pipe' | 'ipc')[]): ChildProcess {
  const script = `ulimit -n 1048576 2>/dev/null || ulimit -n $(ulimit -Hn); exec ${command}`;
  return track(spawn('bash', ['-c', script], { cwd: ROOT, env, stdio }));
}

export interface RedisServer {
  readonly url: string;
  readonly pid: number;
  readonly client: Redis;
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const child = spawnWithLimits(`redis-server --port ${port} --bind 127.0.0.1 --save '' --appendonly no --maxclients 10000`, process.env, ['ignore', 'ignore', 'inherit']);
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
  client.on('error', () => undefined);
  await waitFor('redis-server', 10_000, async () => {
    if (client.status !== 'ready') await client.connect().catch(() => undefined);
    return (await client.ping()) === 'PONG';
  });
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid!, client };
}

export type TargetKind = 'gateway' | 'floor';

export interface Target {
  readonly kind: TargetKind;
  readonly name: string;
  readonly pid: number;
  /** ws://…/graphql */
  readonly wsUrl: string;
  /** http://…/graphql */
  readonly httpUrl: string;
  stats(): Promise<{ connections: number; subscriptions: number }>;
  /** The gateway's Prometheus text (process and V8 heap figures included); the floor has none. */
  metrics?(): Promise<string>;
  stop(): Promise<void>;
}

export interface TargetOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly secret: string;
  readonly name: string;
  /** extra node flags for the gateway, e.g. --cpu-prof */
  readonly nodeFlags?: readonly string[];
  /** extra environment (the amqp scenario's AMQP_* variables) */
  readonly env?: Readonly<Record<string, string>>;
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

let built: Promise<void> | undefined;

function run(command: string, args: string[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = track(spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] }));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`))));
  });
}

/**
 * Compiles both servers once per run: the gateway with `npm run build` (it runs as `npm start`
 * runs it, from dist/), the floor to bench/dist/. Both run as plain JavaScript.
 */
function buildServers(): Promise<void> {
  built ??= run('npm', ['run', '--silent', 'build']).then(() => run('npx', ['tsc', '-p', 'bench/tsconfig.floor.json']));
  return built;
}

export async function startGateway(options: TargetOptions): Promise<Target> {
  await buildServers();
  const port = await freePort();
  const metricsPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: String(metricsPort),
    JWT_SECRET: options.secret,
    REDIS_URL: options.redisUrl,
    REDIS_PREFIX: options.prefix,
    LOG_LEVEL: 'warn',
    INSTANCE_ID: options.name,
    WEB_APP: 'false',
    SHUTDOWN_TIMEOUT_MS: '3000',
    // Each connection is its own user, so the per-user limits are realistic; the rest must not throttle a benchmark.
    WS_MAX_CONNECTIONS_PER_USER: '1000',
    MAX_SUBSCRIPTIONS_PER_USER: '100000',
    RATE_LIMIT_OPERATIONS: '1000000',
    RATE_LIMIT_DISCONNECT_AFTER: '1000000',
    ...options.env,
  };
  const flags = ['--enable-source-maps', ...(options.nodeFlags ?? [])].join(' ');
  const child = spawnWithLimits(`node ${flags} dist/main.js`, env, ['pipe', 'inherit', 'inherit']);
  child.once('exit', (code, signal) => {
    if (code !== 0 && code !== null) process.stderr.write(`gateway ${options.name} exited with ${code ?? signal}\n`);
  });
  const base = `http://127.0.0.1:${port}`;
  const ops = `http://127.0.0.1:${metricsPort}`;
  await waitFor(`gateway ${options.name} ready`, 60_000, async () => {
    if (child.exitCode !== null) throw new Error(`gateway ${options.name} exited with ${child.exitCode}`);
    return (await fetch(`${base}/ready`)).status === 200;
  }).catch((error: unknown) => {
    if (child.exitCode !== null) throw new Error(`gateway ${options.name} exited with ${child.exitCode}`);
    throw error;
  });
  return {
    kind: 'gateway',
    name: options.name,
    pid: child.pid!,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    httpUrl: `${base}/graphql`,
    async stats() {
      const stats = (await (await fetch(`${ops}/stats`)).json()) as { connections: { websocket: number }; subscriptions: Record<string, number> };
      return { connections: stats.connections.websocket, subscriptions: Object.values(stats.subscriptions).reduce((sum, count) => sum + count, 0) };
    },
    metrics: async () => (await fetch(`${ops}/metrics`)).text(),
    stop: () => stopChild(child, 8_000),
  };
}

export async function startFloor(options: TargetOptions): Promise<Target> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, HOST: '127.0.0.1', PORT: String(port), JWT_SECRET: options.secret, REDIS_URL: options.redisUrl, REDIS_PREFIX: options.prefix, NODE_ENV: 'production', ...options.env };
  await buildServers();
  const child = spawnWithLimits('node --enable-source-maps bench/dist/floor-server.js', env, ['pipe', 'ignore', 'inherit']);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`floor ${options.name} ready`, 30_000, async () => {
    if (child.exitCode !== null) throw new Error(`floor exited with ${child.exitCode}`);
    const response = await fetch(`${base}/ready`);
    return response.status === 200 && (await response.text()) === 'ok';
  });
  return {
    kind: 'floor',
    name: options.name,
    pid: child.pid!,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    httpUrl: `${base}/graphql`,
    async stats() {
      return (await (await fetch(`${base}/stats`)).json()) as { connections: number; subscriptions: number };
    },
    stop: () => stopChild(child, 3_000),
  };
}

/** A load-generator child process. */
export class Loader {
  private readonly waiters: { evt: string; resolve: (message: Record<string, unknown>) => void }[] = [];
  private constructor(readonly child: ChildProcess) {
    child.on('message', (message: Record<string, unknown>) => {
      const index = this.waiters.findIndex((waiter) => waiter.evt === message['evt']);
      if (index >= 0) this.waiters.splice(index, 1)[0]!.resolve(message);
    });
  }

  static async start(): Promise<Loader> {
    const child = spawnWithLimits('node --import tsx bench/load.ts', process.env, ['ignore', 'inherit', 'inherit', 'ipc']);
    const loader = new Loader(child);
    await loader.next('ready', 30_000);
    return loader;
  }

  get pid(): number {
    return this.child.pid!;
  }

  next<T = Record<string, unknown>>(evt: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load generator: no ${evt} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        evt,
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message as T);
        },
      });
    });
  }

  send(command: Command): void {
    this.child.send(command);
  }

  async open(plan: OpenPlan, timeoutMs: number) {
    const done = this.next<{ ok: number; failed: number; errors: Record<string, number>; ms: number }>('opened', timeoutMs);
    this.send({ cmd: 'open', plan });
    return done;
  }

  async count() {
    const reply = this.next<{ received: number; firstAt: number; lastAt: number }>('count', 10_000);
    this.send({ cmd: 'count' });
    return reply;
  }

  async report(expectedByHotel: Record<string, number>) {
    const reply = this.next<LoaderReport>('report', 30_000);
    this.send({ cmd: 'report', expectedByHotel });
    return reply;
  }

  /** Drops every socket at once and reconnects them all (same tokens); resolves once all are resubscribed or failed. */
  async storm(concurrency: number, timeoutMs: number) {
    const done = this.next<{ ok: number; failed: number; errors: Record<string, number>; droppedAt: number; resubscribedAt: number }>('stormed', timeoutMs);
    this.send({ cmd: 'storm', concurrency });
    return done;
  }

  /** Connections subscribed again that have not received since the storm (`users`: their indexes), still reconnecting (`waiting`), received (`recovered`). */
  async pending() {
    const reply = this.next<{ users: number[]; waiting: number; recovered: number }>('pending', 10_000);
    this.send({ cmd: 'pending' });
    return reply;
  }

  /** Per connection that received since the storm, the ms from `since` until its first result. */
  async recovery(since: number) {
    const reply = this.next<{ recovery: LoaderReport['latency']; lastAt: number }>('recovery', 10_000);
    this.send({ cmd: 'recovery', since });
    return reply;
  }

  /** Every subscribed connection subscribes `variant` to one more room (operation `${id}${index}`); resolves once all are sent. */
  async join(variant: string, rooms: number, roomPrefix: string, id: string) {
    const reply = this.next<{ sent: number }>('joined', 30_000);
    this.send({ cmd: 'join', variant, rooms, roomPrefix, id });
    return reply;
  }

  /** Every connection completes what `join` subscribed; resolves once all are sent. */
  async leave(id: string) {
    const reply = this.next<{ sent: number }>('left', 30_000);
    this.send({ cmd: 'leave', id });
    return reply;
  }

  /** Presence frames received since the last reset: SNAPSHOTs, CHANGES frames, and the changes in them. */
  async presence() {
    const reply = this.next<{ snapshots: number; frames: number; joined: number; left: number }>('presence', 10_000);
    this.send({ cmd: 'presence' });
    return reply;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.send({ cmd: 'close' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

export interface LoaderReport {
  received: number;
  firstAt: number;
  lastAt: number;
  missing: number;
  extra: number;
  open: number;
  latency: { counts: [number, number][]; n: number; sum: number; max: number };
  mismatches: number;
  checked: number;
  mismatchSamples: string[];
  closeCodes: Record<string, number>;
  unexpectedCloses: number;
  errors: Record<string, number>;
  memory: number;
}

/** Memory figures from a gateway's /metrics (prom-client): resident set, V8 heap and its spaces, external. */
export async function memoryFiguresOf(target: { metrics?(): Promise<string> }): Promise<Map<string, number>> {
  const text = (await target.metrics?.()) ?? '';
  const figures = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(process_resident_memory_bytes|nodejs_heap_size_(?:total|used)_bytes|nodejs_external_memory_bytes|nodejs_heap_space_size_(?:total|used)_bytes\{space="[a-z_]+"\}) ([0-9.e+]+)/.exec(line);
    if (match) figures.set(match[1]!, Number(match[2]));
  }
  return figures;
}
