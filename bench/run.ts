/**
 * The Tidings benchmark. Starts redis-server, then for every scenario a fresh gateway (production
 * mode, `node --import tsx src/main.ts`) and a fresh floor server (bench/floor-server.ts), drives
 * each with the same load-generator processes (bench/load.ts) over loopback, and reports every
 * figure beside the floor's from the same run, as a ratio. Writes bench/results/<timestamp>.json.
 *
 *   npm run bench                          # every scenario, default sizes (about 10 minutes)
 *   npm run bench:quick                    # small sizes, about a minute
 *   npm run bench -- --scenarios broadcast,idle --subscribers 5000
 *   npm run bench -- --help
 *
 * See docs/BENCHMARKS.md.
 */
import { execSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import { BOOKINGS, bookingEnvelopeNow, bookingsTopic, CONVERSATION, conversationMembersKey, conversationTopic, envelopeNow, Histogram, inboxTopic, INBOX, messageEnvelopeNow, notificationEnvelopeNow, nowMs, priceData, occurredAtOf, PRESENCE_WATCH, VARIANTS, BASIC } from './lib/common.js';
import { cpuMs, killAll, Loader, memoryFiguresOf, openFilesLimit, ROOT, rssBytes, sleep, startFloor, startGateway, startRedis, waitFor, type LoaderReport, type RedisServer, type Target, type TargetKind } from './lib/procs.js';
import type { OpenPlan } from './load.js';
import amqp from 'amqplib';
import { createServer as createHttpServer } from 'node:http';
import { createTestRabbit, type TestRabbit } from '../test/support/rabbitmq.js';

// ---------------------------------------------------------------------------------------------
// Options

const DEFAULTS = {
  scenarios: 'broadcast,targeted,idle,cross,mixed,scale',
  /** which servers to measure (the ratios need both) */
  targets: 'floor,gateway',
  /** 1. broadcast */
  subscribers: 2000,
  events: 500,
  /** 2. targeted */
  targetedSubscribers: 10_000,
  hotels: 1000,
  rate: 500,
  duration: 10,
  /** 3. idle */
  idleConnections: 10_000,
  idleSeconds: 10,
  /** 4. cross-instance */
  crossSubscribers: 1000,
  crossHotels: 100,
  crossRate: 100,
  crossDuration: 5,
  /** 6. mixed */
  mixedSubscribers: 2000,
  mixedEvents: 500,
  /** 8. inbox: one subscriber per user room (notificationCreated), Redis-published */
  inboxSubscribers: 3_000,
  inboxRate: 1_000,
  inboxDuration: 10,
  /** 9. conversations: members online per conversation, newMessage Redis-published */
  conversations: 1_000,
  conversationMembers: 5,
  conversationRate: 500,
  conversationDuration: 10,
  /** 10. session mix: one connection per user with four subscriptions (own notifications, own bookings, a hotel, a conversation); idle for `idleSeconds` */
  sessionConnections: 10_000,
  sessionHotels: 1_000,
  sessionConversationMembers: 5,
  /** events per room kind published at the end to check delivery */
  sessionSamples: 100,
  /** seconds after connecting at which RSS is measured again, settled (V8 gives back the connect burst's garbage on its own by then) */
  sessionSettleSeconds: 60,
  /** 11. reconnect storm: subscribed clients dropped at once and reconnected at once */
  stormClients: 10_000,
  /** in-flight handshakes per load generator while reconnecting (kept below the servers' listen backlog of 511) */
  stormConcurrency: 100,
  /** ms between probe rounds: a notification to every resubscribed client not yet receiving */
  stormProbeInterval: 100,
  /** seconds from the drop before giving up on clients that do not receive again */
  stormDeadline: 120,
  /** 7. bulk publishing: events in all, items per publishPrices request (the floor posts one per request) */
  bulkEvents: 10_000,
  bulkBatch: 100,
  /** 12. RabbitMQ ingress: notification.created messages waiting in the queue before the server starts consuming */
  amqpMessages: 20_000,
  amqpPrefetch: 50,
  /** 14. presence: conversations of members joining and leaving at once, one presence watcher per conversation */
  presenceConversations: 1_000,
  presenceMembers: 5,
  /** 5. connection scale */
  scaleTarget: 50_000,
  scaleAddresses: 8,
  scaleDeadline: 150,
  /** load-generator processes (scale uses more when one process cannot hold its share) */
  loaders: 2,
  /** in-flight handshakes per load generator */
  concurrency: 100,
  /** seconds: one scenario (both targets), the whole run */
  scenarioTimeout: 600,
  runTimeout: 1500,
  /** also write V8 CPU profiles of the gateway to bench/results/profiles/ */
  cpuProf: false,
  out: '',
};

const QUICK: Partial<typeof DEFAULTS> = {
  subscribers: 300,
  events: 100,
  targetedSubscribers: 1000,
  hotels: 100,
  rate: 200,
  duration: 3,
  idleConnections: 1000,
  idleSeconds: 3,
  crossSubscribers: 200,
  crossHotels: 20,
  crossRate: 50,
  crossDuration: 2,
  mixedSubscribers: 300,
  mixedEvents: 50,
  bulkEvents: 2_000,
  inboxSubscribers: 300,
  conversations: 100,
  conversationRate: 100,
  conversationDuration: 3,
  inboxRate: 200,
  inboxDuration: 3,
  sessionConnections: 1_000,
  sessionHotels: 100,
  sessionSamples: 50,
  sessionSettleSeconds: 30,
  stormClients: 1_000,
  stormDeadline: 40,
  amqpMessages: 2_000,
  presenceConversations: 100,
  scaleTarget: 3000,
  scaleDeadline: 40,
  scenarioTimeout: 120,
  runTimeout: 300,
};

type Options = typeof DEFAULTS;

function parseArgs(argv: string[]): Options {
  const options: Options = { ...DEFAULTS };
  const set = (key: string, value: string | undefined) => {
    const name = key.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase()) as keyof Options;
    if (!(name in DEFAULTS)) throw new Error(`unknown option --${key} (see --help)`);
    const current = DEFAULTS[name];
    if (typeof current === 'boolean') (options as Record<string, unknown>)[name] = value === undefined ? true : value === 'true' || value === '1';
    else if (typeof current === 'number') {
      const number = Number(value);
      if (!Number.isFinite(number) || number <= 0) throw new Error(`--${key} needs a positive number`);
      (options as Record<string, unknown>)[name] = number;
    } else (options as Record<string, unknown>)[name] = value ?? '';
  };
  if (argv.includes('--quick')) Object.assign(options, QUICK);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') continue;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`Options (defaults; --quick uses small sizes):\n${Object.entries(DEFAULTS)
        .map(([key, value]) => `  --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${String(value)}`)
        .join('\n')}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const [key, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (inline !== undefined) set(key, inline);
    else if (typeof DEFAULTS[key.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase()) as keyof Options] === 'boolean' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) set(key, undefined);
    else set(key, argv[++i]);
  }
  return options;
}

// ---------------------------------------------------------------------------------------------
// Results

interface Row {
  scenario: string;
  metric: string;
  unit: string;
  gateway: number | undefined;
  floor: number | undefined;
  /** lower is better (ratio > 1 means the gateway is worse) or higher is better */
  better: 'lower' | 'higher' | 'info';
}

const rows: Row[] = [];
const raw: Record<string, Record<string, unknown>> = {};
const notes: string[] = [];

function row(scenario: string, metric: string, unit: string, better: Row['better'], gateway: number | undefined, floor: number | undefined): void {
  rows.push({ scenario, metric, unit, better, gateway, floor });
}

function fmt(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '—';
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 100_000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

function ratio(r: Row): number | undefined {
  if (r.gateway === undefined || r.floor === undefined || r.floor === 0 || Number.isNaN(r.gateway) || Number.isNaN(r.floor)) return undefined;
  return r.gateway / r.floor;
}

function table(): string {
  const header = ['scenario', 'metric', 'gateway', 'floor', 'ratio'];
  const lines = rows.map((r) => {
    const rt = ratio(r);
    return [r.scenario, `${r.metric}${r.unit ? ` (${r.unit})` : ''}`, fmt(r.gateway), fmt(r.floor), rt === undefined ? '—' : `${rt.toFixed(2)}×`];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const render = (cells: string[]) => `| ${cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  return [render(header), `|${widths.map((w, i) => (i >= 2 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...lines.map(render)].join('\n');
}

function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// Harness

const secret = randomBytes(32).toString('hex');
const runTag = randomBytes(3).toString('hex');
let options: Options;
let redis: RedisServer;

async function startTarget(kind: TargetKind, name: string, prefix: string, env: Record<string, string> = {}): Promise<Target> {
  const common = { redisUrl: redis.url, prefix, secret, name, env };
  if (kind === 'floor') return startFloor(common);
  // One directory per gateway: every thread (main, tsx's loader worker) writes its own profile,
  // named by Node with its thread id; a fixed --cpu-prof-name would make them overwrite each other.
  const profileDir = join(ROOT, 'bench/results/profiles', `${name}-${Date.now()}`);
  if (options.cpuProf) mkdirSync(profileDir, { recursive: true });
  return startGateway({ ...common, nodeFlags: options.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] });
}

async function startLoaders(n: number): Promise<Loader[]> {
  return Promise.all(Array.from({ length: n }, () => Loader.start()));
}

interface ConnectResult {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  /** server CPU spent connecting, authenticating and subscribing */
  cpuMs: number;
  wallMs: number;
  /** subscriptions the server reported when the wait ended */
  serverSubscriptions: number;
}

/**
 * Opens `count` subscribed connections spread over the loaders and waits until the server reports
 * every one of them subscribed; measures the server CPU of the whole phase.
 */
async function connect(
  target: Target,
  loaders: Loader[],
  plan: Omit<OpenPlan, 'start' | 'count' | 'url' | 'secret' | 'userPrefix'> & { count: number; userPrefix?: string },
  timeoutMs: number,
): Promise<ConnectResult> {
  const cpu0 = cpuMs(target.pid);
  const t0 = Date.now();
  const share = Math.ceil(plan.count / loaders.length);
  const results = await Promise.all(
    loaders.map((loader, i) => {
      const start = i * share;
      const count = Math.max(0, Math.min(share, plan.count - start));
      return loader.open({ ...plan, url: target.wsUrl, secret, userPrefix: plan.userPrefix ?? `u${runTag}-${target.name}-`, start, count }, timeoutMs + 5_000);
    }),
  );
  const ok = results.reduce((sum, r) => sum + r.ok, 0);
  const failed = results.reduce((sum, r) => sum + r.failed, 0);
  const errors: Record<string, number> = {};
  for (const r of results) for (const [key, value] of Object.entries(r.errors)) errors[key] = (errors[key] ?? 0) + value;
  let serverSubscriptions = 0;
  const perConnection = 1 + (plan.extra?.length ?? 0);
  await waitFor(`${target.name}: ${ok * perConnection} subscriptions`, Math.max(5_000, timeoutMs - (Date.now() - t0)), async () => {
    serverSubscriptions = (await target.stats()).subscriptions;
    return serverSubscriptions >= ok * perConnection;
  }, 100).catch((error: unknown) => log(`  warning: ${(error as Error).message} (server reports ${serverSubscriptions})`));
  const result = { ok, failed, errors, cpuMs: cpuMs(target.pid) - cpu0, wallMs: Date.now() - t0, serverSubscriptions };
  log(`  ${target.name}: ${ok} subscribed, ${failed} failed in ${(result.wallMs / 1000).toFixed(1)} s, server CPU ${result.cpuMs.toFixed(0)} ms${failed ? ` ${JSON.stringify(errors)}` : ''}`);
  return result;
}

/**
 * Waits until the loaders received `expected` results, or nothing arrived for `stallMs` while the
 * server sat idle (a server still busy with a backlog is not stalled), or the timeout.
 */
async function awaitDelivery(loaders: Loader[], expected: number, stallMs: number, timeoutMs: number, target: Target): Promise<{ received: number; cpuAtEnd: number }> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let lastChange = Date.now();
  let cpuAtChange = cpuMs(target.pid);
  for (;;) {
    const counts = await Promise.all(loaders.map((loader) => loader.count()));
    const received = counts.reduce((sum, c) => sum + c.received, 0);
    const cpuAtEnd = cpuMs(target.pid);
    if (received >= expected) return { received, cpuAtEnd };
    if (received !== last) {
      last = received;
      lastChange = Date.now();
      cpuAtChange = cpuAtEnd;
    } else if (Date.now() - lastChange > stallMs && cpuAtEnd - cpuAtChange < 0.1 * (Date.now() - lastChange)) {
      return { received, cpuAtEnd };
    }
    if (Date.now() > deadline) {
      log(`  delivery wait timed out after ${Math.round(timeoutMs / 1000)} s`);
      return { received, cpuAtEnd };
    }
    await sleep(50);
  }
}

async function reports(loaders: Loader[], expectedByHotel: Record<string, number>) {
  const parts = await Promise.all(loaders.map((loader) => loader.report(expectedByHotel)));
  const sum = (key: keyof LoaderReport) => parts.reduce((total, part) => total + (part[key] as number), 0);
  const errors: Record<string, number> = {};
  const closeCodes: Record<string, number> = {};
  for (const part of parts) {
    for (const [key, value] of Object.entries(part.errors)) errors[key] = (errors[key] ?? 0) + value;
    for (const [key, value] of Object.entries(part.closeCodes)) closeCodes[key] = (closeCodes[key] ?? 0) + value;
  }
  return {
    received: sum('received'),
    missing: sum('missing'),
    extra: sum('extra'),
    open: sum('open'),
    mismatches: sum('mismatches'),
    checked: sum('checked'),
    unexpectedCloses: sum('unexpectedCloses'),
    mismatchSamples: parts.flatMap((part) => part.mismatchSamples).slice(0, 5),
    firstAt: Math.min(...parts.map((part) => part.firstAt).filter((t) => t > 0)),
    lastAt: Math.max(...parts.map((part) => part.lastAt)),
    latency: Histogram.from(parts.map((part) => part.latency)),
    errors,
    closeCodes,
  };
}

/** Publishes `count` events on one hotel's channel as fast as one pipelined Redis client can. */
async function burst(prefix: string, hotelId: string, count: number, seq0 = 0): Promise<number> {
  const t0 = nowMs();
  const pipeline = redis.client.pipeline();
  for (let seq = seq0; seq < seq0 + count; seq++) pipeline.publish(`${prefix}price:${hotelId}`, envelopeNow(hotelId, seq));
  await pipeline.exec();
  return t0;
}

function mb(bytes: number): number {
  return bytes / 1024 / 1024;
}

function bothTargets<T>(scenario: string, run: (kind: TargetKind) => Promise<T>): Promise<Record<TargetKind, T | undefined>> {
  return (async () => {
    const out: Record<TargetKind, T | undefined> = { floor: undefined, gateway: undefined };
    for (const kind of ['floor', 'gateway'] as const) {
      if (!options.targets.split(',').includes(kind)) continue;
      log(`${scenario}: ${kind}`);
      try {
        out[kind] = await withTimeout(run(kind), options.scenarioTimeout * 1000 / 2, `${scenario} (${kind})`);
      } catch (error) {
        log(`  ${scenario} (${kind}) failed: ${(error as Error).message}`);
        notes.push(`${scenario} (${kind}) failed: ${(error as Error).message}`);
        killStray();
      }
    }
    raw[scenario] = out as Record<string, unknown>;
    return out;
  })();
}

/** Targets and loaders of the scenario in progress, stopped when it ends or fails. */
const live = { targets: new Set<Target>(), loaders: new Set<Loader>() };

async function withScenario<T>(
  kind: TargetKind,
  names: string[],
  loaderCount: number,
  body: (targets: Target[], loaders: Loader[], prefix: string) => Promise<T>,
  env: Record<string, string> = {},
): Promise<T> {
  const prefix = `bench-${runTag}-${names[0]}:`;
  const targets: Target[] = [];
  const loaders: Loader[] = [];
  try {
    for (const name of names) {
      const target = await startTarget(kind, name, prefix, env);
      targets.push(target);
      live.targets.add(target);
    }
    for (const loader of await startLoaders(loaderCount)) {
      loaders.push(loader);
      live.loaders.add(loader);
    }
    return await body(targets, loaders, prefix);
  } finally {
    await Promise.all(loaders.map((loader) => loader.close().catch(() => undefined)));
    await Promise.all(targets.map((target) => target.stop().catch(() => undefined)));
    for (const loader of loaders) live.loaders.delete(loader);
    for (const target of targets) live.targets.delete(target);
  }
}

function killStray(): void {
  for (const loader of live.loaders) loader.child.kill('SIGKILL');
  for (const target of live.targets) {
    try {
      process.kill(target.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  live.loaders.clear();
  live.targets.clear();
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function basePlan(count: number, hotels: number, hotelPrefix: string): Omit<OpenPlan, 'start' | 'count' | 'url' | 'secret' | 'userPrefix'> & { count: number } {
  return {
    count,
    hotels,
    hotelPrefix,
    variants: [BASIC.name],
    mixedRoles: false,
    localAddresses: [],
    concurrency: options.concurrency,
    verify: false,
    deadlineMs: options.scenarioTimeout * 1000,
    connectTimeoutMs: 30_000,
    maxFailures: Math.max(100, Math.ceil(count / 10)),
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** How load.ts assigns selection sets and roles in scenario 6. */
function groupsOf(n: number): Record<string, number> {
  const groups: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const key = `${VARIANTS[i % VARIANTS.length]!.name}/${Math.floor(i / VARIANTS.length) % 2 === 1 ? 'admin' : 'user'}`;
    groups[key] = (groups[key] ?? 0) + 1;
  }
  return groups;
}

/** 1 and 6: N subscribers on one hotel, E events published as fast as possible. */
async function broadcastScenario(scenario: 'broadcast' | 'mixed', kind: TargetKind) {
  const mixed = scenario === 'mixed';
  const subscribers = mixed ? options.mixedSubscribers : options.subscribers;
  const events = mixed ? options.mixedEvents : options.events;
  return withScenario(kind, [`${kind}-${scenario}`], options.loaders, async ([target], loaders, prefix) => {
    const plan = { ...basePlan(subscribers, 1, 'hotel-'), ...(mixed ? { variants: VARIANTS.map((v) => v.name), mixedRoles: true, verify: true } : {}) };
    const conn = await connect(target!, loaders, plan, options.scenarioTimeout * 400);
    // Warm-up: a few events so first-use compilation does not land in the measurement.
    await burst(prefix, 'hotel-0', 5, 1_000_000);
    await awaitDelivery(loaders, conn.ok * 5, 2_000, 10_000, target!);
    loaders.forEach((loader) => loader.send({ cmd: 'reset' }));
    const cpu0 = cpuMs(target!.pid);
    const redisCpu0 = cpuMs(redis.pid);
    const loaderCpu0 = loaders.reduce((sum, loader) => sum + cpuMs(loader.pid), 0);
    const t0 = await burst(prefix, 'hotel-0', events);
    const expected = conn.ok * events;
    const { received, cpuAtEnd } = await awaitDelivery(loaders, expected, 3_000, options.scenarioTimeout * 300, target!);
    const redisCpu = cpuMs(redis.pid) - redisCpu0;
    const loaderCpu = loaders.reduce((sum, loader) => sum + cpuMs(loader.pid), 0) - loaderCpu0;
    const r = await reports(loaders, { 'hotel-0': events });
    const seconds = (r.lastAt - t0) / 1000;
    const cpu = cpuAtEnd - cpu0;
    const result = {
      subscribers: conn.ok,
      connectFailures: conn.failed,
      events,
      expected,
      received,
      deliveredPerSecond: received / seconds,
      seconds,
      p50: r.latency.percentile(50),
      p99: r.latency.percentile(99),
      max: r.latency.max,
      loss: r.missing / expected,
      missing: r.missing,
      duplicates: r.extra,
      serverCpuMs: cpu,
      cpuMicrosPerDelivery: (cpu * 1000) / received,
      redisCpuMs: redisCpu,
      loaderCpuMicrosPerDelivery: (loaderCpu * 1000) / received,
      connectCpuMicrosPerConnection: (conn.cpuMs * 1000) / conn.ok,
      mismatches: r.mismatches,
      checked: r.checked,
      /** subscribers per selection set and role (scenario 6) */
      groups: mixed ? groupsOf(conn.ok + conn.failed) : undefined,
      mismatchSamples: r.mismatchSamples,
      clientErrors: r.errors,
      closeCodes: r.closeCodes,
    };
    log(`  ${received}/${expected} in ${seconds.toFixed(2)} s, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, CPU ${cpu.toFixed(0)} ms, load generators ${result.loaderCpuMicrosPerDelivery.toFixed(1)} µs/event${mixed ? `, mismatches ${r.mismatches}/${r.checked}` : ''}`);
    return result;
  });
}

/** 2: subscribers spread over hotels, a steady publish rate. */
async function targetedScenario(kind: TargetKind) {
  return withScenario(kind, [`${kind}-targeted`], options.loaders, async ([target], loaders, prefix) => {
    const hotels = options.hotels;
    const conn = await connect(target!, loaders, basePlan(options.targetedSubscribers, hotels, 'hotel-'), options.scenarioTimeout * 400);
    const perHotel = new Map<number, number>();
    for (let i = 0; i < conn.ok + conn.failed; i++) perHotel.set(i % hotels, (perHotel.get(i % hotels) ?? 0) + 1);
    // warm-up on every hotel's channel
    const warm = redis.client.pipeline();
    for (let h = 0; h < hotels; h++) warm.publish(`${prefix}price:hotel-${h}`, envelopeNow(`hotel-${h}`, 1_000_000 + h));
    await warm.exec();
    await awaitDelivery(loaders, conn.ok, 2_000, 10_000, target!);
    loaders.forEach((loader) => loader.send({ cmd: 'reset' }));

    const total = Math.round(options.rate * options.duration);
    const expectedByHotel: Record<string, number> = {};
    const cpu0 = cpuMs(target!.pid);
    const redisCpu0 = cpuMs(redis.pid);
    const t0 = Date.now();
    let sent = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((Date.now() - t0) / 1000) * options.rate));
      if (due > sent) {
        const pipeline = redis.client.pipeline();
        for (; sent < due; sent++) {
          const hotelId = `hotel-${(sent * 7919) % hotels}`;
          expectedByHotel[hotelId] = (expectedByHotel[hotelId] ?? 0) + 1;
          pipeline.publish(`${prefix}price:${hotelId}`, envelopeNow(hotelId, sent));
        }
        void pipeline.exec();
      }
      await sleep(5);
    }
    const publishSeconds = (Date.now() - t0) / 1000;
    let expected = 0;
    for (const [hotelId, n] of Object.entries(expectedByHotel)) expected += n * (perHotel.get(Number(hotelId.slice(6))) ?? 0);
    const { received, cpuAtEnd } = await awaitDelivery(loaders, expected, 3_000, 60_000, target!);
    const wall = (Date.now() - t0) / 1000;
    const cpu = cpuAtEnd - cpu0;
    const redisCpu = cpuMs(redis.pid) - redisCpu0;
    const r = await reports(loaders, expectedByHotel);
    const expectedSubscribed = r.received + r.missing - r.extra;
    const result = {
      subscribers: conn.ok,
      connectFailures: conn.failed,
      events: total,
      publishSeconds,
      expected: expectedSubscribed,
      received,
      p50: r.latency.percentile(50),
      p99: r.latency.percentile(99),
      max: r.latency.max,
      loss: expectedSubscribed > 0 ? r.missing / expectedSubscribed : NaN,
      missing: r.missing,
      duplicates: r.extra,
      serverCpuMs: cpu,
      serverCpuPercent: (cpu / (wall * 1000)) * 100,
      cpuMicrosPerDelivery: (cpu * 1000) / received,
      redisCpuMs: redisCpu,
      connectCpuMicrosPerConnection: (conn.cpuMs * 1000) / conn.ok,
      clientErrors: r.errors,
      closeCodes: r.closeCodes,
    };
    log(`  ${received}/${expectedSubscribed} delivered, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, server CPU ${result.serverCpuPercent.toFixed(1)} %`);
    return result;
  });
}

/** 3: idle subscribed connections; RSS per connection and connection cost. */
async function idleScenario(kind: TargetKind) {
  return withScenario(kind, [`${kind}-idle`], options.loaders, async ([target], loaders) => {
    await sleep(1_000);
    const rss0 = rssBytes(target!.pid);
    const conn = await connect(target!, loaders, basePlan(options.idleConnections, options.idleConnections, 'idle-'), options.scenarioTimeout * 400);
    // let the connect burst settle (GC, buffers), then measure idle
    await sleep(2_000);
    const cpuIdle0 = cpuMs(target!.pid);
    await sleep(options.idleSeconds * 1000);
    const idleCpu = cpuMs(target!.pid) - cpuIdle0;
    const rss1 = rssBytes(target!.pid);
    // The gateway's own view (the floor reports none), read only now: a /metrics scrape before
    // the connections changed how much the process grew (by ~3 KB per connection, in three runs
    // each way), so none is made then.
    const memory1 = await memoryFiguresOf(target!);
    const stats = await target!.stats();
    const result = { ...idleMemoryFigures(conn, stats, rss0, rss1, idleCpu, memory1), fdLimit: openFilesLimit(target!.pid) };
    if (result.heapUsedMB !== undefined) {
      // Used includes garbage not yet collected: a high figure means no full GC ran since the burst.
      log(`  V8 heap at the end: ${result.heapUsedMB.toFixed(0)} MB used (garbage included until the next full GC), ${result.heapReservedMB!.toFixed(0)} MB reserved`);
    }
    log(`  ${conn.ok} idle: RSS ${mb(rss0).toFixed(0)} → ${mb(rss1).toFixed(0)} MB (${result.rssPerConnectionKB.toFixed(1)} KB/conn), connect ${result.connectCpuMicrosPerConnection.toFixed(0)} µs CPU/conn, idle CPU ${result.idleCpuPercent.toFixed(2)} %`);
    return result;
  });
}

/** What the idle and session scenarios report of a server holding `conn`'s connections: RSS per connection, connect and idle CPU, the V8 heap. */
function idleMemoryFigures(
  conn: { ok: number; failed: number; errors: unknown; wallMs: number; cpuMs: number },
  stats: { connections: number; subscriptions: number },
  rss0: number,
  rss1: number,
  idleCpu: number,
  memory: Map<string, number | undefined>,
) {
  const heapMB = (name: string) => (memory.has(name) ? (memory.get(name) ?? 0) / 1024 / 1024 : undefined);
  return {
    connections: conn.ok,
    connectFailures: conn.failed,
    connectErrors: conn.errors,
    serverConnections: stats.connections,
    serverSubscriptions: stats.subscriptions,
    rssBeforeMB: mb(rss0),
    rssAfterMB: mb(rss1),
    rssPerConnectionKB: (rss1 - rss0) / 1024 / conn.ok,
    connectSeconds: conn.wallMs / 1000,
    connectCpuMs: conn.cpuMs,
    connectCpuMicrosPerConnection: (conn.cpuMs * 1000) / conn.ok,
    idleCpuPercent: (idleCpu / (options.idleSeconds * 1000)) * 100,
    heapUsedMB: heapMB('nodejs_heap_size_used_bytes'),
    heapReservedMB: heapMB('nodejs_heap_size_total_bytes'),
  };
}

/** A `service` token for the publishing scenarios, signed with the run's secret. */
async function pricingServiceToken(): Promise<string> {
  const { SignJWT } = await import('jose');
  return new SignJWT({ roles: ['service'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('pricing-service')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(secret));
}

/** 4: subscribers on instance B, events published through instance A's publishPrice mutation. */
async function crossScenario(kind: TargetKind) {
  return withScenario(kind, [`${kind}-cross-a`, `${kind}-cross-b`], options.loaders, async ([a, b], loaders) => {
    const serviceToken = await pricingServiceToken();
    const hotels = options.crossHotels;
    const conn = await connect(b!, loaders, basePlan(options.crossSubscribers, hotels, 'hotel-'), options.scenarioTimeout * 400);
    const perHotel = new Map<number, number>();
    for (let i = 0; i < conn.ok + conn.failed; i++) perHotel.set(i % hotels, (perHotel.get(i % hotels) ?? 0) + 1);
    const mutation = 'mutation($input: PublishPriceInput!) { publishPrice(input: $input) { eventId } }';
    let httpErrors = 0;
    const httpLatency = new Histogram();
    const publish = async (seq: number, hotelId: string) => {
      const micros = Math.round(nowMs() * 1000);
      const data = priceData(hotelId, seq, micros);
      const started = nowMs();
      const response = await fetch(a!.httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${serviceToken}` },
        body: JSON.stringify({ query: mutation, variables: { input: { ...data, occurredAt: occurredAtOf(micros) } } }),
      });
      const body = (await response.json()) as { errors?: unknown };
      httpLatency.record(nowMs() - started);
      if (response.status !== 200 || body.errors) {
        httpErrors++;
        if (httpErrors <= 3) log(`  publishPrice failed: ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
      }
    };
    // warm-up: one mutation per hotel
    await Promise.all(Array.from({ length: Math.min(hotels, 50) }, (_v, h) => publish(1_000_000 + h, `hotel-${h}`)));
    await sleep(1_000);
    loaders.forEach((loader) => loader.send({ cmd: 'reset' }));
    httpErrors = 0;
    const total = Math.round(options.crossRate * options.crossDuration);
    const expectedByHotel: Record<string, number> = {};
    const cpuA0 = cpuMs(a!.pid);
    const cpuB0 = cpuMs(b!.pid);
    const t0 = Date.now();
    const inFlight = new Set<Promise<void>>();
    for (let seq = 0; seq < total; seq++) {
      const due = t0 + (seq * 1000) / options.crossRate;
      if (due > Date.now()) await sleep(due - Date.now());
      const hotelId = `hotel-${seq % hotels}`;
      expectedByHotel[hotelId] = (expectedByHotel[hotelId] ?? 0) + 1;
      const work = publish(seq, hotelId).catch(() => {
        httpErrors++;
      });
      inFlight.add(work);
      void work.then(() => inFlight.delete(work));
    }
    await Promise.all(inFlight);
    let expected = 0;
    for (const [hotelId, n] of Object.entries(expectedByHotel)) expected += n * (perHotel.get(Number(hotelId.slice(6))) ?? 0);
    const { received } = await awaitDelivery(loaders, expected, 3_000, 30_000, b!);
    const r = await reports(loaders, expectedByHotel);
    const expectedSubscribed = r.received + r.missing - r.extra;
    const result = {
      subscribers: conn.ok,
      mutations: total,
      mutationErrors: httpErrors,
      received,
      expected: expectedSubscribed,
      p50: r.latency.percentile(50),
      p99: r.latency.percentile(99),
      max: r.latency.max,
      loss: expectedSubscribed > 0 ? r.missing / expectedSubscribed : NaN,
      mutationP50: httpLatency.percentile(50),
      mutationP99: httpLatency.percentile(99),
      cpuAMicrosPerMutation: ((cpuMs(a!.pid) - cpuA0) * 1000) / total,
      cpuBMicrosPerDelivery: ((cpuMs(b!.pid) - cpuB0) * 1000) / received,
    };
    log(`  ${received}/${expectedSubscribed} delivered, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, mutation p50 ${result.mutationP50.toFixed(1)} ms, ${httpErrors} errors`);
    return result;
  });
}

/**
 * 7: a pricing service publishing `bulkEvents` prices over HTTP: the gateway takes them in
 * `publishPrices` batches of `bulkBatch`, the floor one `POST /publish` per event (it has no
 * batch). Every event is counted on Redis (PSUBSCRIBE), so both are held to publishing all.
 */
async function bulkScenario(kind: TargetKind) {
  return withScenario(kind, [`${kind}-bulk`], 0, async ([target], _loaders, prefix) => {
    const serviceToken = await pricingServiceToken();
    const counter = redis.client.duplicate();
    let seen = 0;
    counter.on('pmessage', () => void seen++);
    await counter.psubscribe(`${prefix}price:*`);
    const batch = kind === 'gateway' ? options.bulkBatch : 1;
    const mutation =
      batch > 1
        ? 'mutation($inputs: [PublishPriceInput!]!) { publishPrices(inputs: $inputs) { eventId } }'
        : 'mutation($input: PublishPriceInput!) { publishPrice(input: $input) { eventId } }';
    let httpErrors = 0;
    const post = async (seqs: number[]) => {
      const inputs = seqs.map((seq) => {
        const micros = Math.round(nowMs() * 1000);
        return { ...priceData(`hotel-${seq % 100}`, seq, micros), occurredAt: occurredAtOf(micros) };
      });
      const response = await fetch(target!.httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${serviceToken}` },
        body: JSON.stringify({ query: mutation, variables: batch > 1 ? { inputs } : { input: inputs[0] } }),
      });
      const body = (await response.json()) as { errors?: unknown };
      if (response.status !== 200 || body.errors) {
        httpErrors++;
        if (httpErrors <= 3) log(`  publish failed: ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
      }
    };
    // Warm-up (JIT, the token's verification), not counted.
    await post([1_000_000]);
    await waitFor('the warm-up event on Redis', 5_000, async () => seen >= 1, 20);
    seen = 0;
    const total = options.bulkEvents;
    const requests = Array.from({ length: Math.ceil(total / batch) }, (_v, r) => Array.from({ length: Math.min(batch, total - r * batch) }, (_w, i) => r * batch + i));
    const cpu0 = cpuMs(target!.pid);
    const t0 = Date.now();
    // A few requests in flight, as a service with a small connection pool sends them.
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < requests.length) await post(requests[next++]!);
      }),
    );
    await waitFor(`${total} events on Redis`, 30_000, async () => seen >= total, 20).catch((error: unknown) => log(`  warning: ${(error as Error).message} (${seen} seen)`));
    const cpu = cpuMs(target!.pid) - cpu0;
    const wallMs = Date.now() - t0;
    await counter.quit();
    const result = {
      events: total,
      published: seen,
      requests: requests.length,
      httpErrors,
      cpuMicrosPerEvent: (cpu * 1000) / Math.max(1, seen),
      eventsPerSecond: (seen * 1000) / Math.max(1, wallMs),
    };
    log(`  ${seen}/${total} published in ${requests.length} requests, ${result.cpuMicrosPerEvent.toFixed(1)} µs CPU per event, ${httpErrors} errors`);
    return result;
  });
}

/**
 * 13: what tracing costs per event. Scenario 8 (inbox) on the gateway three times in a row:
 * without tracing, then exporting to an OTLP/HTTP receiver in this process with
 * parentbased_traceidratio at 1% and at 100% (the inbox's events come straight from Redis with no
 * traceparent, so the ratio decides for each instance's delivery span).
 */
async function tracingScenario() {
  let spans = 0;
  const collector = createHttpServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      spans += (body.match(/"spanId"/g) ?? []).length;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  collector.listen(0, '127.0.0.1');
  await new Promise((resolve) => collector.once('listening', resolve));
  const endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
  const runs: Record<string, Awaited<ReturnType<typeof inboxScenario>> & { spans: number }> = {};
  try {
    for (const [label, ratio] of [['off', undefined], ['1%', '0.01'], ['100%', '1']] as const) {
      log(`tracing: inbox, tracing ${label}`);
      spans = 0;
      const env: Record<string, string> = ratio === undefined ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: ratio, OTEL_BSP_SCHEDULE_DELAY: '1000' };
      const result = await withTimeout(inboxScenario('gateway', env), (options.scenarioTimeout * 1000) / 2, `tracing ${label}`);
      runs[label] = { ...result, spans };
    }
  } finally {
    collector.close();
  }
  return runs;
}

let rabbit: TestRabbit | undefined;

/**
 * 12: the RabbitMQ ingress. `amqpMessages` notification.created messages, as the services send
 * them, wait in a durable queue bound to a topic exchange (on a RabbitMQ node the benchmark
 * starts) before the server starts; it consumes them with `amqpPrefetch` and publishes each on
 * Redis. The gateway validates, maps, de-duplicates (one Redis script per message) and counts;
 * the floor JSON.parses and PUBLISHes. Measured between 5% and 95% of the messages seen on Redis,
 * so start-up is left out: messages consumed per second and server CPU per message.
 */
async function amqpScenario(kind: TargetKind) {
  if (!rabbit) {
    rabbit = await createTestRabbit();
    await rabbit.start();
  }
  const url = rabbit.url;
  const exchange = `bench-${runTag}-${kind}`;
  const queue = `${exchange}.ingress`;
  const total = options.amqpMessages;
  const admin = await amqp.connect(url);
  const channel = await admin.createConfirmChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, exchange, 'notification.created');
  for (let index = 0; index < total; index++) {
    const message = { notificationId: `n-${index}`, userId: `user-${index % 1000}`, type: 'booking', title: 'Booking confirmed', message: 'Your stay is confirmed', data: {}, timestamp: new Date().toISOString() };
    channel.publish(exchange, 'notification.created', Buffer.from(JSON.stringify(message)), { persistent: true });
    if (index % 1000 === 999) await channel.waitForConfirms();
  }
  await channel.waitForConfirms();
  const prefix = `bench-${runTag}-${kind}-amqp:`;
  const counter = redis.client.duplicate();
  let seen = 0;
  counter.on('pmessage', () => void seen++);
  await counter.psubscribe(`${prefix}user:*`);
  const env: Record<string, string> =
    kind === 'gateway'
      ? { AMQP_URL: url, AMQP_EXCHANGE: exchange, AMQP_QUEUE: queue, AMQP_BOOKING_CURRENCY: 'EUR', AMQP_PREFETCH: String(options.amqpPrefetch) }
      : { AMQP_URL: url, AMQP_QUEUE: queue, AMQP_PREFETCH: String(options.amqpPrefetch) };
  try {
    return await withScenario(
      kind,
      [`${kind}-amqp`],
      0,
      async ([target]) => {
        const samples: Array<{ t: number; cpu: number; seen: number }> = [];
        let last = { t: Date.now(), seen: -1 };
        while (seen < total) {
          samples.push({ t: Date.now(), cpu: cpuMs(target!.pid), seen });
          if (seen !== last.seen) last = { t: Date.now(), seen };
          else if (Date.now() - last.t > 10_000) break;
          await sleep(20);
        }
        samples.push({ t: Date.now(), cpu: cpuMs(target!.pid), seen });
        const from = samples.find((sample) => sample.seen >= total * 0.05);
        const to = samples.find((sample) => sample.seen >= total * 0.95);
        const span = from && to && to.seen > from.seen ? { messages: to.seen - from.seen, ms: to.t - from.t, cpu: to.cpu - from.cpu } : undefined;
        const result = {
          messages: total,
          published: seen,
          messagesPerSecond: span ? (span.messages * 1000) / Math.max(1, span.ms) : NaN,
          cpuMicrosPerMessage: span ? (span.cpu * 1000) / span.messages : NaN,
        };
        log(`  ${seen}/${total} published on Redis, ${result.messagesPerSecond.toFixed(0)} messages/s, ${result.cpuMicrosPerMessage.toFixed(1)} µs CPU per message`);
        return result;
      },
      env,
    );
  } finally {
    await counter.quit();
    await channel.deleteQueue(queue);
    await channel.deleteQueue(`${queue}.dead-letter`);
    await channel.deleteExchange(exchange);
    await channel.deleteExchange(`${queue}.dead-letter`);
    await admin.close();
  }
}

/**
 * A steady publish onto per-room Redis channels after `count` connections subscribed with
 * `variant`: `publish(seq)` names each event's channel and message, every room has
 * `deliveriesPerEvent` subscribers. Measures CPU per delivered event and latency.
 */
async function roomScenario(
  kind: TargetKind,
  name: string,
  room: {
    count: number;
    rooms: number;
    roomPrefix: string;
    variant: string;
    rate: number;
    duration: number;
    deliveriesPerEvent: number;
    /** Before connecting, with the user id of connection `index` (e.g. memberships). */
    prepare?: (prefix: string, userOf: (index: number) => string) => Promise<void>;
    /** The channel (without prefix) and message of event `seq`. */
    message: (seq: number, userOf: (index: number) => string) => [string, string];
    /** The events that warm every room up, one per room, before measuring. */
    warmUp: (userOf: (index: number) => string) => Array<[string, string]>;
    /** Extra environment of the server (the tracing scenario's OTEL_* variables). */
    env?: Record<string, string>;
  },
) {
  return withScenario(kind, [`${kind}-${name}`], options.loaders, async ([target], loaders, prefix) => {
    // connect() names users `u<runTag>-<target>-<index>`.
    const userOf = (index: number) => `u${runTag}-${target!.name}-${index}`;
    await room.prepare?.(prefix, userOf);
    const conn = await connect(target!, loaders, { ...basePlan(room.count, room.rooms, room.roomPrefix), variants: [room.variant] }, options.scenarioTimeout * 400);
    const warm = redis.client.pipeline();
    for (const [channel, message] of room.warmUp(userOf)) warm.publish(`${prefix}${channel}`, message);
    await warm.exec();
    await awaitDelivery(loaders, conn.ok, 2_000, 20_000, target!);
    loaders.forEach((loader) => loader.send({ cmd: 'reset' }));

    const total = Math.round(room.rate * room.duration);
    const cpu0 = cpuMs(target!.pid);
    const t0 = Date.now();
    let sent = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((Date.now() - t0) / 1000) * room.rate));
      if (due > sent) {
        const pipeline = redis.client.pipeline();
        for (; sent < due; sent++) {
          const [channel, message] = room.message(sent, userOf);
          pipeline.publish(`${prefix}${channel}`, message);
        }
        void pipeline.exec();
      }
      await sleep(5);
    }
    const expected = total * room.deliveriesPerEvent;
    const { received, cpuAtEnd } = await awaitDelivery(loaders, expected, 3_000, 60_000, target!);
    const wall = (Date.now() - t0) / 1000;
    const cpu = cpuAtEnd - cpu0;
    const r = await reports(loaders, {});
    const result = {
      subscribers: conn.ok,
      connectFailures: conn.failed,
      events: total,
      expected,
      received,
      loss: expected > 0 ? Math.max(0, expected - received) / expected : NaN,
      p50: r.latency.percentile(50),
      p99: r.latency.percentile(99),
      max: r.latency.max,
      serverCpuPercent: (cpu / (wall * 1000)) * 100,
      cpuMicrosPerDelivery: (cpu * 1000) / Math.max(1, received),
      clientErrors: r.errors,
      closeCodes: r.closeCodes,
    };
    log(`  ${received}/${expected} delivered, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, ${result.cpuMicrosPerDelivery.toFixed(1)} µs CPU per delivery`);
    return result;
  }, room.env);
}

/**
 * 8: every user subscribed to its own room (`notificationCreated`, one connection each), the
 * shape of a team's per-user Socket.io rooms: notifications published straight onto Redis at
 * `inboxRate`, each to one user, so one delivery per event and the per-event fixed cost counts.
 */
async function inboxScenario(kind: TargetKind, env: Record<string, string> = {}) {
  const users = options.inboxSubscribers;
  return roomScenario(kind, 'inbox', {
    env,
    count: users,
    rooms: 1,
    roomPrefix: 'unused-',
    variant: INBOX.name,
    rate: options.inboxRate,
    duration: options.inboxDuration,
    deliveriesPerEvent: 1,
    warmUp: (userOf) => Array.from({ length: users }, (_v, u) => [inboxTopic(userOf(u)), notificationEnvelopeNow(userOf(u), 1_000_000 + u)]),
    message: (seq, userOf) => {
      const userId = userOf((seq * 7919) % users);
      return [inboxTopic(userId), notificationEnvelopeNow(userId, seq)];
    },
  });
}

/**
 * 9: `conversations` conversations of `conversationMembers` members each, every member online with
 * its conversation's `newMessage` (one connection per member); messages published straight onto
 * Redis at `conversationRate`, each to one conversation: small groups, every member of one
 * receiving each message. Memberships are the Redis sets the message service keeps; member
 * `index` is in conversation `index % conversations`.
 */
async function conversationScenario(kind: TargetKind) {
  const conversations = options.conversations;
  const count = conversations * options.conversationMembers;
  return roomScenario(kind, 'conversation', {
    count,
    rooms: conversations,
    roomPrefix: 'conv-',
    variant: CONVERSATION.name,
    rate: options.conversationRate,
    duration: options.conversationDuration,
    deliveriesPerEvent: options.conversationMembers,
    async prepare(prefix, userOf) {
      const members = redis.client.pipeline();
      for (let index = 0; index < count; index++) members.sadd(`${prefix}${conversationMembersKey(`conv-${index % conversations}`)}`, userOf(index));
      await members.exec();
    },
    warmUp: () => Array.from({ length: conversations }, (_v, c) => [conversationTopic(`conv-${c}`), messageEnvelopeNow(`conv-${c}`, 1_000_000 + c)]),
    message: (seq) => {
      const conversationId = `conv-${(seq * 7919) % conversations}`;
      return [conversationTopic(conversationId), messageEnvelopeNow(conversationId, seq)];
    },
  });
}

/**
 * 10: a user's session: `sessionConnections` connections, each its own user holding four
 * subscriptions at once: `notificationCreated` and `bookingUpdated` (its own rooms, no argument),
 * `priceUpdated` of hotel `index % sessionHotels` and `newMessage` of conversation
 * `index % conversations` (conversations of `sessionConversationMembers`, the memberships in the
 * Redis sets the message service keeps). Measured as scenario 3 measures idle memory, then
 * delivery is checked: `sessionSamples` events per room kind, straight onto Redis, one kind at a
 * time, every one counted.
 */
async function sessionScenario(kind: TargetKind) {
  const count = options.sessionConnections;
  const hotels = Math.min(options.sessionHotels, count);
  const conversations = Math.ceil(count / options.sessionConversationMembers);
  return withScenario(kind, [`${kind}-session`], options.loaders, async ([target], loaders, prefix) => {
    const userOf = (index: number) => `u${runTag}-${target!.name}-${index}`;
    const members = redis.client.pipeline();
    for (let index = 0; index < count; index++) members.sadd(`${prefix}${conversationMembersKey(`conv-${index % conversations}`)}`, userOf(index));
    await members.exec();
    await sleep(1_000);
    const rss0 = rssBytes(target!.pid);
    const plan = {
      ...basePlan(count, hotels, 'hotel-'),
      variants: [BASIC.name],
      extra: [
        { variant: INBOX.name, rooms: 1, roomPrefix: 'unused-' },
        { variant: BOOKINGS.name, rooms: 1, roomPrefix: 'unused-' },
        { variant: CONVERSATION.name, rooms: conversations, roomPrefix: 'conv-' },
      ],
    };
    const conn = await connect(target!, loaders, plan, options.scenarioTimeout * 400);
    // as scenario 3: let the connect burst settle, then measure idle
    await sleep(2_000);
    const cpuIdle0 = cpuMs(target!.pid);
    await sleep(options.idleSeconds * 1000);
    const idleCpu = cpuMs(target!.pid) - cpuIdle0;
    const rss1 = rssBytes(target!.pid);
    const memory1 = await memoryFiguresOf(target!);
    const stats = await target!.stats();
    // Measured again once settled: what a long-lived session keeps, where the first figure still
    // holds the connect burst's garbage (a V8 heap shrinks by itself some 30–60 s after a burst).
    await sleep(Math.max(0, options.sessionSettleSeconds - 2 - options.idleSeconds) * 1000);
    const rssSettled = rssBytes(target!.pid);

    // Delivery, one room kind at a time. Subscribers per room, over the connection indexes.
    const samples = options.sessionSamples;
    const inRoom = (rooms: number, room: number) => Math.floor(count / rooms) + (room < count % rooms ? 1 : 0);
    const userSample = Array.from({ length: Math.min(samples, count) }, (_v, k) => Math.floor((k * count) / Math.min(samples, count)));
    const hotelSample = Array.from({ length: Math.min(samples, hotels) }, (_v, k) => Math.floor((k * hotels) / Math.min(samples, hotels)));
    const conversationSample = Array.from({ length: Math.min(samples, conversations) }, (_v, k) => Math.floor((k * conversations) / Math.min(samples, conversations)));
    const kinds: [string, Array<[string, string]>, number][] = [
      ['notificationCreated', userSample.map((u, k) => [inboxTopic(userOf(u)), notificationEnvelopeNow(userOf(u), k)]), userSample.length],
      ['bookingUpdated', userSample.map((u, k) => [bookingsTopic(userOf(u)), bookingEnvelopeNow(userOf(u), k)]), userSample.length],
      ['priceUpdated', hotelSample.map((h, k) => [`price:hotel-${h}`, envelopeNow(`hotel-${h}`, k)]), hotelSample.reduce((sum, h) => sum + inRoom(hotels, h), 0)],
      ['newMessage', conversationSample.map((c, k) => [conversationTopic(`conv-${c}`), messageEnvelopeNow(`conv-${c}`, k)]), conversationSample.reduce((sum, c) => sum + inRoom(conversations, c), 0)],
    ];
    const delivery: Record<string, { events: number; expected: number; received: number }> = {};
    for (const [field, events, expected] of kinds) {
      loaders.forEach((loader) => loader.send({ cmd: 'reset' }));
      const pipeline = redis.client.pipeline();
      for (const [channel, message] of events) pipeline.publish(`${prefix}${channel}`, message);
      await pipeline.exec();
      const { received } = await awaitDelivery(loaders, expected, 3_000, 30_000, target!);
      delivery[field] = { events: events.length, expected, received };
    }
    const expected = Object.values(delivery).reduce((sum, d) => sum + d.expected, 0);
    const received = Object.values(delivery).reduce((sum, d) => sum + d.received, 0);
    const r = await reports(loaders, {});
    const result = {
      ...idleMemoryFigures(conn, stats, rss0, rss1, idleCpu, memory1),
      subscriptionsPerConnection: 4,
      settledSeconds: options.sessionSettleSeconds,
      rssSettledPerConnectionKB: (rssSettled - rss0) / 1024 / conn.ok,
      hotels,
      conversations,
      delivery,
      expected,
      received,
      /** missing results over all four checks (connections that failed to connect count as missing) */
      lost: Math.max(0, expected - received),
      loss: expected > 0 ? Math.max(0, expected - received) / expected : NaN,
      duplicates: Math.max(0, received - expected),
      clientErrors: r.errors,
      closeCodes: r.closeCodes,
      unexpectedCloses: r.unexpectedCloses,
    };
    log(`  ${conn.ok} sessions × 4 subscriptions (server: ${stats.subscriptions}): RSS ${mb(rss0).toFixed(0)} → ${mb(rss1).toFixed(0)} MB (${result.rssPerConnectionKB.toFixed(1)} KB/conn; ${result.rssSettledPerConnectionKB.toFixed(1)} KB/conn at ${options.sessionSettleSeconds} s), connect ${result.connectCpuMicrosPerConnection.toFixed(0)} µs CPU/conn, idle CPU ${result.idleCpuPercent.toFixed(2)} %`);
    log(`  delivery check: ${Object.entries(delivery).map(([field, d]) => `${field} ${d.received}/${d.expected}`).join(', ')}`);
    return result;
  });
}

/**
 * 11: `stormClients` clients, each its own user with `notificationCreated` (as scenario 8), all
 * dropped at once (every socket reset by the load generators in one loop) and reconnected at once
 * with the same tokens, `stormConcurrency` handshakes in flight per load generator. Every
 * `stormProbeInterval` ms the orchestrator publishes a notification straight onto Redis to every
 * client that has resubscribed (its `subscribe` sent) and not received since the drop; a client is
 * back when it receives its first. Measures the time from the drop until every client is back, and
 * the server's CPU over that window (the closes, the reconnects, the resubscribes and the probes).
 */
async function stormScenario(kind: TargetKind) {
  const count = options.stormClients;
  return withScenario(kind, [`${kind}-storm`], options.loaders, async ([target], loaders, prefix) => {
    const userOf = (index: number) => `u${runTag}-${target!.name}-${index}`;
    const conn = await connect(target!, loaders, { ...basePlan(count, 1, 'unused-'), variants: [INBOX.name] }, options.scenarioTimeout * 400);
    // warm-up: one notification per user, then let the server settle
    const warm = redis.client.pipeline();
    for (let u = 0; u < count; u++) warm.publish(`${prefix}${inboxTopic(userOf(u))}`, notificationEnvelopeNow(userOf(u), 1_000_000 + u));
    await warm.exec();
    const warmed = await awaitDelivery(loaders, conn.ok, 2_000, 20_000, target!);
    await sleep(2_000);
    const rss0 = rssBytes(target!.pid);

    const cpu0 = cpuMs(target!.pid);
    const redisCpu0 = cpuMs(redis.pid);
    const loaderCpu0 = loaders.reduce((sum, loader) => sum + cpuMs(loader.pid), 0);
    const t0 = nowMs();
    let stormed: Awaited<ReturnType<Loader['storm']>>[] | undefined;
    void Promise.all(loaders.map((loader) => loader.storm(options.stormConcurrency, options.stormDeadline * 1000))).then(
      (replies) => void (stormed = replies),
      (error: unknown) => log(`  storm: ${(error as Error).message}`),
    );
    let seq = 2_000_000;
    let probes = 0;
    let rounds = 0;
    let recovered = 0;
    let cpuAtEnd = cpu0;
    for (;;) {
      const round = nowMs();
      const pending = await Promise.all(loaders.map((loader) => loader.pending()));
      recovered = pending.reduce((sum, p) => sum + p.recovered, 0);
      cpuAtEnd = cpuMs(target!.pid);
      const reconnected = stormed?.reduce((sum, s) => sum + s.ok, 0);
      if (reconnected !== undefined && recovered >= reconnected) break;
      if (round - t0 > options.stormDeadline * 1000) {
        log(`  storm: ${count - recovered} clients not receiving after ${options.stormDeadline} s`);
        break;
      }
      const users = pending.flatMap((p) => p.users);
      if (users.length > 0) {
        const pipeline = redis.client.pipeline();
        for (const u of users) pipeline.publish(`${prefix}${inboxTopic(userOf(u))}`, notificationEnvelopeNow(userOf(u), seq++));
        await pipeline.exec();
        probes += users.length;
      }
      rounds++;
      await sleep(Math.max(0, options.stormProbeInterval - (nowMs() - round)));
    }
    const cpu = cpuAtEnd - cpu0;
    const redisCpu = cpuMs(redis.pid) - redisCpu0;
    const loaderCpu = loaders.reduce((sum, loader) => sum + cpuMs(loader.pid), 0) - loaderCpu0;
    const droppedAt = stormed ? Math.min(...stormed.map((s) => s.droppedAt)) : t0;
    const parts = await Promise.all(loaders.map((loader) => loader.recovery(droppedAt)));
    const recovery = Histogram.from(parts.map((part) => part.recovery));
    const lastAt = Math.max(...parts.map((part) => part.lastAt));
    const stats = await target!.stats();
    const r = await reports(loaders, {});
    const reconnectErrors: Record<string, number> = {};
    for (const s of stormed ?? []) for (const [key, value] of Object.entries(s.errors)) reconnectErrors[key] = (reconnectErrors[key] ?? 0) + value;
    const result = {
      clients: conn.ok,
      connectFailures: conn.failed,
      warmUpReceived: warmed.received,
      concurrency: options.stormConcurrency * loaders.length,
      reconnected: stormed?.reduce((sum, s) => sum + s.ok, 0),
      reconnectFailures: stormed?.reduce((sum, s) => sum + s.failed, 0),
      reconnectErrors,
      recovered,
      /** clients that connected before the drop and did not receive again */
      unrecovered: conn.ok - recovered,
      /** drop → the last client's first result after it, ms (probe rounds every stormProbeInterval ms: up to that much late) */
      recoveryMs: lastAt > 0 ? lastAt - droppedAt : NaN,
      recoveryP50Ms: recovery.percentile(50),
      recoveryP99Ms: recovery.percentile(99),
      /** drop → the last load generator's last subscribe sent */
      resubscribedMs: stormed ? Math.max(...stormed.map((s) => s.resubscribedAt)) - droppedAt : NaN,
      serverCpuMs: cpu,
      cpuMicrosPerClient: (cpu * 1000) / Math.max(1, recovered),
      /** the same window: on 2 shared cores the load generators' share bounds how fast clients can come back */
      redisCpuMs: redisCpu,
      loaderCpuMs: loaderCpu,
      connectCpuMicrosPerConnection: (conn.cpuMs * 1000) / conn.ok,
      probeRounds: rounds,
      probes,
      rssBeforeMB: mb(rss0),
      rssAfterMB: mb(rssBytes(target!.pid)),
      serverConnections: stats.connections,
      serverSubscriptions: stats.subscriptions,
      clientErrors: r.errors,
      closeCodes: r.closeCodes,
      unexpectedCloses: r.unexpectedCloses,
    };
    log(`  storm: ${result.reconnected ?? '?'}/${conn.ok} reconnected, all receiving after ${(result.recoveryMs / 1000).toFixed(2)} s (p50 ${(result.recoveryP50Ms / 1000).toFixed(2)} s, resubscribed after ${(result.resubscribedMs / 1000).toFixed(2)} s), server CPU ${cpu.toFixed(0)} ms (${result.cpuMicrosPerClient.toFixed(0)} µs/client), ${probes} probes in ${rounds} rounds${result.unrecovered ? `, ${result.unrecovered} not receiving` : ''}`);
    return result;
  });
}

/**
 * 14: presence. `presenceConversations` conversations of `presenceMembers` members, each member its
 * own user and connection, held open by its own `notificationCreated` (so it is online throughout:
 * no user-scope change is measured). A round: every member joins at once (subscribes `newMessage`
 * of its conversation, member `index` in conversation `index % presenceConversations`: the gateway
 * announces a JOINED each), then every member leaves at once (completes it: a LEFT each, after
 * PRESENCE_GRACE_MS). One warm-up round, then the measured one. Runs, one after the other:
 *
 *   watched      the gateway, with one presence watcher per conversation: one more member of it, its
 *                own connection, subscribed to `presence(conversationId)` only
 *   uncoalesced  the same with PRESENCE_COALESCE_MS=0
 *   unwatched    the gateway, the same joins and leaves, nobody watching (it still tracks and announces)
 *   baseline     the gateway, the members subscribing and completing `priceUpdated(hotelId)` instead,
 *                which holds no presence (and needs no membership check)
 *   floor        the floor: the same `newMessage` subscribes and completes, no presence at all
 *
 * Changes are counted where they are announced, on Redis (PSUBSCRIBE to the presence topics);
 * frames at the watchers. Server CPU is summed over the round's two phases, each from the first
 * message sent until every change was announced (and seen by the watchers) or, without
 * announcements (baseline, floor), until the server's /stats shows every subscription added or
 * gone. PRESENCE_TTL_SECONDS=300 keeps the heartbeat (every TTL/3) and the sweep (TTL/6) out of
 * the phases: they cost per hold and period, not per change.
 */
type PresenceRun = 'watched' | 'uncoalesced' | 'unwatched' | 'baseline' | 'floor';
const PRESENCE_RUNS: readonly PresenceRun[] = ['floor', 'baseline', 'unwatched', 'watched', 'uncoalesced'];
/** PRESENCE_GRACE_MS in the presence scenario: a leave is announced this long after the complete. */
const PRESENCE_BENCH_GRACE_MS = 500;

async function presenceRun(run: PresenceRun) {
  const kind: TargetKind = run === 'floor' ? 'floor' : 'gateway';
  const conversations = options.presenceConversations;
  const members = conversations * options.presenceMembers;
  const watched = run === 'watched' || run === 'uncoalesced';
  const env: Record<string, string> =
    kind === 'gateway' ? { PRESENCE_GRACE_MS: String(PRESENCE_BENCH_GRACE_MS), PRESENCE_TTL_SECONDS: '300', ...(run === 'uncoalesced' ? { PRESENCE_COALESCE_MS: '0' } : {}) } : {};
  return withScenario(
    kind,
    [`${kind}-presence-${run}`],
    watched ? 3 : 2,
    async ([target], loaders, prefix) => {
      const pid = target!.pid;
      const watcherLoader = watched ? loaders[0] : undefined;
      const memberLoaders = watched ? loaders.slice(1) : loaders;
      const memberPrefix = `u${runTag}-${target!.name}-m`;
      const watcherPrefix = `u${runTag}-${target!.name}-w`;
      const memberships = redis.client.pipeline();
      for (let index = 0; index < members; index++) memberships.sadd(`${prefix}${conversationMembersKey(`conv-${index % conversations}`)}`, `${memberPrefix}${index}`);
      if (watched) for (let c = 0; c < conversations; c++) memberships.sadd(`${prefix}${conversationMembersKey(`conv-${c}`)}`, `${watcherPrefix}${c}`);
      await memberships.exec();

      // Every announcement, as the gateway publishes it for every instance.
      const announced = { messages: 0, conversationJoined: 0, conversationLeft: 0, userJoined: 0, userLeft: 0 };
      const counter = redis.client.duplicate();
      counter.on('pmessage', (_pattern: string, _channel: string, message: string) => {
        let event: { data?: { scope?: string; changes?: Array<{ change?: string }> } };
        try {
          event = JSON.parse(message) as typeof event;
        } catch {
          return;
        }
        announced.messages++;
        for (const change of event.data?.changes ?? []) {
          const key = `${event.data?.scope === 'user' ? 'user' : 'conversation'}${change.change === 'JOINED' ? 'Joined' : 'Left'}` as const;
          announced[key]++;
        }
      });
      await counter.psubscribe(`${prefix}conversation:*:presence`, `${prefix}user:*:presence`);
      try {
        let watchers = 0;
        if (watcherLoader) {
          const conn = await connect(target!, [watcherLoader], { ...basePlan(conversations, conversations, 'conv-'), variants: [PRESENCE_WATCH.name], userPrefix: watcherPrefix }, options.scenarioTimeout * 200);
          watchers = conn.ok;
          await waitFor(`${watchers} presence snapshots`, 60_000, async () => (await watcherLoader.presence()).snapshots >= watchers || undefined, 100);
        }
        const conn = await connect(target!, memberLoaders, { ...basePlan(members, 1, 'unused-'), variants: [INBOX.name], userPrefix: memberPrefix }, options.scenarioTimeout * 200);
        const base = watchers + conn.ok;
        await waitFor(`${base} subscriptions`, 60_000, async () => (await target!.stats()).subscriptions >= base || undefined, 100);
        // Everyone's online JOINED announced and delivered before measuring.
        if (kind === 'gateway') {
          await waitFor('the members online', 60_000, () => announced.userJoined >= base || undefined, 100).catch((error: unknown) => log(`  warning: ${(error as Error).message} (${announced.userJoined} announced)`));
        }
        const seen = async () => (watcherLoader ? await watcherLoader.presence() : { snapshots: 0, frames: 0, joined: 0, left: 0 });
        const serverSubscriptions = async () => (await target!.stats()).subscriptions - base;
        // What the members join: their conversation, or (baseline) a hotel's prices, which holds no presence.
        const [joinVariant, joinPrefix] = run === 'baseline' ? [BASIC.name, 'hotel-'] : [CONVERSATION.name, 'conv-'];
        /** Without announcements to count (floor, baseline), the server's /stats says when a phase is over. */
        const byStats = run === 'floor' || run === 'baseline';

        /**
         * Sends one phase's messages, polls `done` (whether the phase is over, and how far it got)
         * until it is over or stalls for 10 s, and returns the server CPU and time it took. The
         * gateway's progress is read on Redis and at the watchers, without asking it anything.
         */
        const phase = async (what: string, send: () => Promise<number>, done: (sent: number) => Promise<[boolean, string]>) => {
          const cpu0 = cpuMs(pid);
          const t0 = Date.now();
          const sent = await send();
          let progress = '';
          let lastProgress = Date.now();
          for (;;) {
            const [over, now] = await done(sent);
            if (over) break;
            if (now !== progress) [progress, lastProgress] = [now, Date.now()];
            if (Date.now() - lastProgress > 10_000) {
              log(`  ${what}: gave up waiting, ${progress} of ${sent}`);
              break;
            }
            await sleep(byStats ? 50 : 20);
          }
          return { sent, cpuMs: cpuMs(pid) - cpu0, ms: Date.now() - t0 };
        };
        const sum = (replies: Array<{ sent: number }>) => replies.reduce((total, reply) => total + reply.sent, 0);
        /** Every member joins, then every member leaves; `before`: the announcement counts when the round began. */
        const round = async (id: string) => {
          const before = { ...announced };
          const joined = await phase(
            `${id}: join`,
            async () => sum(await Promise.all(memberLoaders.map((loader) => loader.join(joinVariant, conversations, joinPrefix, id)))),
            async (sent): Promise<[boolean, string]> => {
              if (byStats) {
                const added = await serverSubscriptions();
                return [added >= sent, `${added} subscribed`];
              }
              const [announcedNow, seenNow] = [announced.conversationJoined - before.conversationJoined, watched ? (await seen()).joined : sent];
              return [announcedNow >= sent && seenNow >= sent, `${announcedNow} JOINED announced, ${seenNow} seen`];
            },
          );
          const left = await phase(
            `${id}: leave`,
            async () => sum(await Promise.all(memberLoaders.map((loader) => loader.leave(id)))),
            async (sent): Promise<[boolean, string]> => {
              if (byStats) {
                const remaining = await serverSubscriptions();
                return [remaining <= 0, `${sent - remaining} completed`];
              }
              const [announcedNow, seenNow] = [announced.conversationLeft - before.conversationLeft, watched ? (await seen()).left : sent];
              return [announcedNow >= sent && seenNow >= sent, `${announcedNow} LEFT announced, ${seenNow} seen`];
            },
          );
          return { before, joined, left };
        };

        // A warm-up round (a document's first subscribes cost more), then the measured one.
        await round('w');
        await sleep(1_000);
        loaders.forEach((loader) => loader.send({ cmd: 'reset' }));
        const { before, joined, left } = await round('j');
        const frames = await seen();
        const r = await reports(loaders, {});
        const changes = announced.conversationJoined - before.conversationJoined + announced.conversationLeft - before.conversationLeft;
        const operations = joined.sent + left.sent;
        const perOperation = byStats;
        const cpu = joined.cpuMs + left.cpuMs;
        const result = {
          conversations,
          members: conn.ok,
          memberConnectFailures: conn.failed,
          watchers,
          joins: joined.sent,
          leaves: left.sent,
          /** conversation changes announced in the two phases (JOINED + LEFT); the floor announces none */
          changes,
          joinedAnnounced: announced.conversationJoined - before.conversationJoined,
          leftAnnounced: announced.conversationLeft - before.conversationLeft,
          /** user-scope (online) changes in the phases: none expected, the connections stay open */
          userChangesDuringPhases: announced.userJoined - before.userJoined + announced.userLeft - before.userLeft,
          /** presence messages published on Redis in the phases (one per scope and coalescing interval) */
          announcements: announced.messages - before.messages,
          joinMs: joined.ms,
          leaveMs: left.ms,
          joinCpuMs: joined.cpuMs,
          leaveCpuMs: left.cpuMs,
          serverCpuMs: cpu,
          /** server CPU ÷ changes announced; floor and baseline: ÷ subscribes and completes (a change each with presence) */
          cpuMicrosPerChange: (cpu * 1000) / Math.max(1, perOperation ? operations : changes),
          watcherFrames: frames.frames,
          watcherChanges: frames.joined + frames.left,
          framesPerChange: watched ? frames.frames / Math.max(1, frames.joined + frames.left) : NaN,
          clientErrors: r.errors,
          closeCodes: r.closeCodes,
          unexpectedCloses: r.unexpectedCloses,
        };
        log(
          `  ${run}: ${joined.sent} joins in ${(joined.ms / 1000).toFixed(2)} s (${joined.cpuMs.toFixed(0)} ms CPU), ${left.sent} leaves in ${(left.ms / 1000).toFixed(2)} s (${left.cpuMs.toFixed(0)} ms CPU), ` +
            `${changes} changes announced in ${result.announcements} messages, ${result.cpuMicrosPerChange.toFixed(1)} µs CPU per ${perOperation ? 'join or leave' : 'change'}` +
            (watched ? `, watchers: ${result.watcherChanges} changes in ${result.watcherFrames} frames (${result.framesPerChange.toFixed(3)} per change)` : ''),
        );
        return result;
      } finally {
        await counter.quit();
      }
    },
    env,
  );
}

/** 14: every run of the presence scenario, one after the other (the floor only with `--targets` naming it). */
async function presenceScenario() {
  const runs: Partial<Record<PresenceRun, Awaited<ReturnType<typeof presenceRun>>>> = {};
  for (const run of PRESENCE_RUNS) {
    const kind = run === 'floor' ? 'floor' : 'gateway';
    if (!options.targets.split(',').includes(kind)) continue;
    log(`presence: ${run}`);
    try {
      runs[run] = await withTimeout(presenceRun(run), (options.scenarioTimeout * 1000) / 2, `presence (${run})`);
    } catch (error) {
      log(`  presence (${run}) failed: ${(error as Error).message}`);
      notes.push(`presence (${run}) failed: ${(error as Error).message}`);
      killStray();
    }
  }
  return runs;
}

/** 5: as many subscribed connections as one instance takes, from several source addresses. */
async function scaleScenario(kind: TargetKind) {
  const target0 = options.scaleTarget;
  // Every child gets the same open-files limit (raised as far as the hard limit allows). A server
  // cannot accept beyond it, and one load generator cannot hold more sockets than it either.
  const fdLimit = Number(execSync('bash -c "ulimit -n 1048576 2>/dev/null || ulimit -n $(ulimit -Hn); ulimit -n"').toString().trim());
  // A server at its limit cannot even accept the orchestrator's /stats request: leave it 100 fds.
  const attempt = Math.min(target0, fdLimit - 100);
  const perLoader = Math.max(1000, Math.min(fdLimit - 500, 15_000));
  const loaderCount = Math.max(options.loaders, Math.ceil(attempt / perLoader));
  if (attempt < target0) notes.push(`scale (${kind}): the target of ${target0} connections exceeds the open-files limit of ${fdLimit} per process (the hard limit; raising it needs CAP_SYS_RESOURCE), so ${attempt} were attempted (100 descriptors left for Redis, listeners and the /stats requests)`);
  return withScenario(kind, [`${kind}-scale`], loaderCount, async ([target], loaders) => {
    await sleep(1_000);
    const rss0 = rssBytes(target!.pid);
    const addresses = Array.from({ length: options.scaleAddresses }, (_v, i) => `127.0.0.${i + 1}`);
    const conn = await connect(
      target!,
      loaders,
      { ...basePlan(attempt, Math.max(1, Math.floor(attempt / 10)), 'scale-'), localAddresses: addresses, deadlineMs: options.scaleDeadline * 1000, connectTimeoutMs: 20_000, maxFailures: 200 },
      (options.scaleDeadline + 30) * 1000,
    );
    await sleep(2_000);
    const stats = await target!.stats();
    const rss1 = rssBytes(target!.pid);
    const result = {
      target: target0,
      attempted: attempt,
      reached: stats.subscriptions,
      openConnections: stats.connections,
      failed: conn.failed,
      errors: conn.errors,
      fdLimit: openFilesLimit(target!.pid),
      sourceAddresses: addresses.length,
      loaders: loaders.length,
      rssBeforeMB: mb(rss0),
      rssMB: mb(rss1),
      rssPerConnectionKB: (rss1 - rss0) / 1024 / Math.max(1, stats.subscriptions),
      connectSeconds: conn.wallMs / 1000,
      connectCpuMicrosPerConnection: (conn.cpuMs * 1000) / Math.max(1, conn.ok),
      alive: (() => {
        try {
          process.kill(target!.pid, 0);
          return true;
        } catch {
          return false;
        }
      })(),
    };
    log(`  reached ${result.reached} subscribed connections (limit ${fdLimit} fds), RSS ${result.rssMB.toFixed(0)} MB`);
    return result;
  });
}

// ---------------------------------------------------------------------------------------------

type Both<T> = Record<TargetKind, T | undefined>;

function g<T, K extends keyof T>(both: Both<T>, key: K): Record<TargetKind, number | undefined> {
  return { gateway: both.gateway?.[key] as number | undefined, floor: both.floor?.[key] as number | undefined };
}

function addRows<T>(scenario: string, both: Both<T>, metrics: [keyof T, string, string, Row['better'], ((v: number) => number)?][]): void {
  for (const [key, metric, unit, better, map] of metrics) {
    const values = g(both, key);
    const f = (v: number | undefined) => (v === undefined ? undefined : map ? map(v) : v);
    row(scenario, metric, unit, better, f(values.gateway), f(values.floor));
  }
}

function machine() {
  const sh = (command: string) => {
    try {
      return execSync(command, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      return '';
    }
  };
  return {
    nproc: Number(sh('nproc')),
    cpuModel: cpus()[0]?.model ?? sh("lscpu | sed -n 's/^Model name:\\s*//p'"),
    memoryMB: Math.round(totalmem() / 1024 / 1024),
    freeMemoryMB: Math.round(freemem() / 1024 / 1024),
    node: process.version,
    kernel: sh('uname -r'),
    redis: sh('redis-server --version'),
    openFilesSoftHard: sh("bash -c 'echo $(ulimit -Sn)/$(ulimit -Hn)'"),
    ephemeralPorts: sh('cat /proc/sys/net/ipv4/ip_local_port_range').replace(/\s+/g, '-'),
    somaxconn: Number(sh('cat /proc/sys/net/core/somaxconn')),
    gatewayCommit: sh(`git -C ${ROOT} rev-parse --short HEAD`),
    gatewayDirty: sh(`git -C ${ROOT} status --porcelain -- src`).length > 0,
  };
}

async function main(): Promise<void> {
  options = parseArgs(process.argv.slice(2));
  const scenarios = options.scenarios.split(',').map((s) => s.trim()).filter(Boolean);
  const known = ['broadcast', 'targeted', 'idle', 'cross', 'mixed', 'scale', 'bulk', 'inbox', 'conversation', 'session', 'storm', 'amqp', 'tracing', 'presence'];
  for (const s of scenarios) if (!known.includes(s)) throw new Error(`unknown scenario ${s} (known: ${known.join(', ')})`);
  const startedAt = new Date();
  const info = machine();
  log(`Tidings benchmark: ${scenarios.join(', ')} on ${info.nproc} × ${info.cpuModel}, ${info.memoryMB} MB, node ${info.node}`);
  redis = await startRedis();
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = options.out || join(dir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  // Written after every scenario, so an interrupted run keeps what it measured.
  const save = (complete: boolean) => {
    const finishedAt = new Date();
    writeFileSync(
      file,
      `${JSON.stringify({ complete, startedAt, finishedAt, seconds: (finishedAt.getTime() - startedAt.getTime()) / 1000, machine: info, options, rows: rows.map((r) => ({ ...r, ratio: ratio(r) })), notes, scenarios: raw, table: table() }, null, 2)}\n`,
    );
  };

  for (const scenario of scenarios) {
    switch (scenario) {
      case 'broadcast': {
        const both = await bothTargets('broadcast', (kind) => broadcastScenario('broadcast', kind));
        const s = `1 broadcast ${options.subscribers}×${options.events}`;
        addRows(s, both, [
          ['deliveredPerSecond', 'delivered events/s', '/s', 'higher'],
          ['p50', 'p50 latency', 'ms', 'lower'],
          ['p99', 'p99 latency', 'ms', 'lower'],
          ['loss', 'loss', '%', 'lower', (v) => v * 100],
          ['cpuMicrosPerDelivery', 'server CPU per delivered event', 'µs', 'lower'],
          ['connectCpuMicrosPerConnection', 'connection cost', 'µs CPU', 'lower'],
        ]);
        break;
      }
      case 'targeted': {
        const both = await bothTargets('targeted', targetedScenario);
        const s = `2 targeted ${options.targetedSubscribers}/${options.hotels} @${options.rate}/s`;
        addRows(s, both, [
          ['p50', 'p50 latency', 'ms', 'lower'],
          ['p99', 'p99 latency', 'ms', 'lower'],
          ['loss', 'loss', '%', 'lower', (v) => v * 100],
          ['serverCpuPercent', 'server CPU', '% of a core', 'lower'],
          ['cpuMicrosPerDelivery', 'server CPU per delivered event', 'µs', 'lower'],
        ]);
        break;
      }
      case 'idle': {
        const both = await bothTargets('idle', idleScenario);
        const s = `3 idle ${options.idleConnections}`;
        addRows(s, both, [
          ['connections', 'subscribed connections', '', 'info'],
          ['rssPerConnectionKB', 'RSS per connection', 'KB', 'lower'],
          ['rssAfterMB', 'RSS total', 'MB', 'lower'],
          ['connectCpuMicrosPerConnection', 'connection cost', 'µs CPU', 'lower'],
          ['idleCpuPercent', 'idle CPU', '% of a core', 'lower'],
        ]);
        break;
      }
      case 'cross': {
        const both = await bothTargets('cross', crossScenario);
        const s = `4 cross-instance ${options.crossSubscribers} @${options.crossRate}/s`;
        addRows(s, both, [
          ['p50', 'p50 latency', 'ms', 'lower'],
          ['p99', 'p99 latency', 'ms', 'lower'],
          ['loss', 'loss', '%', 'lower', (v) => v * 100],
          ['mutationP50', 'publish request p50', 'ms', 'lower'],
          ['cpuAMicrosPerMutation', 'instance A CPU per publish', 'µs', 'lower'],
          ['cpuBMicrosPerDelivery', 'instance B CPU per delivered event', 'µs', 'lower'],
        ]);
        break;
      }
      case 'mixed': {
        const both = await bothTargets('mixed', (kind) => broadcastScenario('mixed', kind));
        const s = `6 mixed ${options.mixedSubscribers}×${options.mixedEvents}`;
        addRows(s, both, [
          ['deliveredPerSecond', 'delivered events/s', '/s', 'higher'],
          ['p50', 'p50 latency', 'ms', 'lower'],
          ['p99', 'p99 latency', 'ms', 'lower'],
          ['loss', 'loss', '%', 'lower', (v) => v * 100],
          ['cpuMicrosPerDelivery', 'server CPU per delivered event', 'µs', 'lower'],
          ['mismatches', 'mismatches', `of ${both.gateway?.checked ?? '?'}`, 'lower'],
        ]);
        break;
      }
      case 'scale': {
        const both = await bothTargets('scale', scaleScenario);
        const s = `5 scale (target ${options.scaleTarget})`;
        addRows(s, both, [
          ['reached', 'subscribed connections reached', '', 'higher'],
          ['rssMB', 'RSS', 'MB', 'lower'],
          ['rssPerConnectionKB', 'RSS per connection', 'KB', 'lower'],
          ['connectCpuMicrosPerConnection', 'connection cost', 'µs CPU', 'lower'],
        ]);
        break;
      }
      case 'inbox': {
        const both = await bothTargets('inbox', inboxScenario);
        const s = `8 inbox ${options.inboxSubscribers} rooms @${options.inboxRate}/s`;
        addRows(s, both, [
          ['p50', 'p50 latency', 'ms', 'lower'],
          ['p99', 'p99 latency', 'ms', 'lower'],
          ['loss', 'loss', '%', 'lower', (v) => v * 100],
          ['cpuMicrosPerDelivery', 'server CPU per delivered event', 'µs', 'lower'],
        ]);
        break;
      }
      case 'conversation': {
        const both = await bothTargets('conversation', conversationScenario);
        const s = `9 conversation ${options.conversations}×${options.conversationMembers} @${options.conversationRate}/s`;
        addRows(s, both, [
          ['p50', 'p50 latency', 'ms', 'lower'],
          ['p99', 'p99 latency', 'ms', 'lower'],
          ['loss', 'loss', '%', 'lower', (v) => v * 100],
          ['cpuMicrosPerDelivery', 'server CPU per delivered event', 'µs', 'lower'],
        ]);
        break;
      }
      case 'session': {
        const both = await bothTargets('session', sessionScenario);
        const s = `10 session ${options.sessionConnections}×4 subscriptions`;
        addRows(s, both, [
          ['connections', 'connections (4 subscriptions each)', '', 'info'],
          ['rssPerConnectionKB', `RSS per connection, ${2 + options.idleSeconds} s after connecting`, 'KB', 'lower'],
          ['rssSettledPerConnectionKB', `RSS per connection, settled (${options.sessionSettleSeconds} s)`, 'KB', 'lower'],
          ['rssAfterMB', 'RSS total', 'MB', 'lower'],
          ['connectCpuMicrosPerConnection', 'connection cost (4 subscribes)', 'µs CPU', 'lower'],
          ['idleCpuPercent', 'idle CPU', '% of a core', 'lower'],
          ['loss', 'delivery check loss', '%', 'lower', (v) => v * 100],
        ]);
        break;
      }
      case 'storm': {
        const both = await bothTargets('storm', stormScenario);
        const s = `11 reconnect storm ${options.stormClients}`;
        addRows(s, both, [
          ['recoveryMs', 'drop → every client receiving', 'ms', 'lower'],
          ['recoveryP50Ms', 'drop → client receiving, p50', 'ms', 'lower'],
          ['serverCpuMs', 'server CPU, drop → every client receiving', 'ms', 'lower'],
          ['cpuMicrosPerClient', 'server CPU per reconnected client', 'µs', 'lower'],
          ['unrecovered', 'clients not receiving again', '', 'lower'],
        ]);
        break;
      }
      case 'tracing': {
        const runs = await tracingScenario();
        raw['tracing'] = runs;
        const s = `13 tracing overhead, inbox ${options.inboxSubscribers} rooms @${options.inboxRate}/s (gateway only; ratio = traced ÷ untraced)`;
        for (const label of ['1%', '100%'] as const) {
          row(s, `CPU per delivered event, sampled ${label}`, 'µs', 'lower', runs[label]?.cpuMicrosPerDelivery, runs['off']?.cpuMicrosPerDelivery);
          row(s, `p99 latency, sampled ${label}`, 'ms', 'lower', runs[label]?.p99, runs['off']?.p99);
          row(s, `spans received, sampled ${label}`, '', 'info', runs[label]?.spans, undefined);
        }
        break;
      }
      case 'presence': {
        const runs = await presenceScenario();
        raw['presence'] = runs;
        const s = `14 presence ${options.presenceConversations}×${options.presenceMembers}`;
        const { watched, uncoalesced, unwatched, floor } = runs;
        row(`${s}, a watcher per conversation ÷ none (gateway)`, 'server CPU per change (subscribe + JOINED, complete + LEFT)', 'µs', 'lower', watched?.cpuMicrosPerChange, unwatched?.cpuMicrosPerChange);
        row(`${s}, a watcher per conversation ÷ none (gateway)`, 'changes announced', '', 'info', watched?.changes, unwatched?.changes);
        row(`${s}, no watchers: newMessage (presence) ÷ priceUpdated (none), gateway`, 'server CPU per join or leave', 'µs', 'lower', unwatched?.cpuMicrosPerChange, runs.baseline?.cpuMicrosPerChange);
        row(`${s}, no watchers: gateway ÷ floor`, 'server CPU per join or leave', 'µs', 'lower', unwatched?.cpuMicrosPerChange, floor?.cpuMicrosPerChange);
        row(`${s}, watched: coalesced ÷ PRESENCE_COALESCE_MS=0`, 'presence frames per change', '', 'lower', watched?.framesPerChange, uncoalesced?.framesPerChange);
        row(`${s}, watched: coalesced ÷ PRESENCE_COALESCE_MS=0`, 'server CPU per change', 'µs', 'lower', watched?.cpuMicrosPerChange, uncoalesced?.cpuMicrosPerChange);
        row(`${s}, watched: coalesced ÷ PRESENCE_COALESCE_MS=0`, 'changes seen by the watchers', '', 'info', watched?.watcherChanges, uncoalesced?.watcherChanges);
        break;
      }
      case 'amqp': {
        const both = await bothTargets('amqp', amqpScenario);
        const s = `12 RabbitMQ ingress ${options.amqpMessages} notification.created (prefetch ${options.amqpPrefetch})`;
        addRows(s, both, [
          ['published', 'events published on Redis', '', 'info'],
          ['messagesPerSecond', 'messages consumed/s', '/s', 'higher'],
          ['cpuMicrosPerMessage', 'server CPU per consumed message', 'µs', 'lower'],
        ]);
        break;
      }
      case 'bulk': {
        const both = await bothTargets('bulk', bulkScenario);
        const s = `7 bulk publish ${options.bulkEvents} (gateway: batches of ${options.bulkBatch}; floor: one per request)`;
        addRows(s, both, [
          ['published', 'events published', '', 'info'],
          ['httpErrors', 'request errors', '', 'lower'],
          ['cpuMicrosPerEvent', 'server CPU per published event', 'µs', 'lower'],
          ['eventsPerSecond', 'events/s', '/s', 'higher'],
        ]);
        break;
      }
    }
    save(false);
  }

  const output = table();
  process.stdout.write(`\n${output}\n\nratio = gateway / floor (same run). Latency = Redis PUBLISH (or publishPrice request) to receipt in the load generator.\n`);
  for (const note of notes) process.stdout.write(`note: ${note}\n`);
  save(true);
  process.stdout.write(`results: ${file}\n`);
  await rabbit?.remove();
  rabbit = undefined;
}

let exiting = false;
function shutdown(code: number): never {
  if (!exiting) {
    exiting = true;
    killAll();
    rabbit?.killNow();
  }
  process.exit(code);
}
process.on('SIGINT', () => {
  log('interrupted: stopping every child');
  shutdown(130);
});
process.on('SIGTERM', () => shutdown(143));
process.on('exit', () => {
  killAll();
  rabbit?.killNow();
});

const runTimer = setTimeout(
  () => {
    log('run timeout reached: stopping');
    shutdown(124);
  },
  (parseArgs(process.argv.slice(2)).runTimeout) * 1000,
);
runTimer.unref();

main().then(
  () => {
    redis?.client.disconnect();
    shutdown(0);
  },
  (error: unknown) => {
    log(`benchmark failed: ${(error as Error).stack ?? String(error)}`);
    shutdown(1);
  },
);
