import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DEVELOPMENT_JWT_SECRET } from '../src/config/config.js';
import { tokenFor } from './support/gateway.js';
import { PRICE_UPDATED, priceInput, PUBLISH_PRICE } from './support/operations.js';
import { openRawSocket } from './support/raw-socket.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * The real process, started as `npm start` starts it (built with `npm run build`, then the start
 * script's command in the repo root, development defaults, no Redis, no JWT_SECRET), stopped with
 * a signal as an orchestrator would: clients are told to reconnect (1001) and the process exits 0
 * within SHUTDOWN_TIMEOUT_MS.
 */

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
/** `npm start`'s command (the `prestart` script builds first); its `node` is this Node. */
const startCommand = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }).scripts.start
  .trim()
  .split(/\s+/);

beforeAll(() => {
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  if (build.status !== 0) throw new Error(`npm run build failed: ${build.stdout}${build.stderr}`);
}, 150_000);
const SHUTDOWN_TIMEOUT_MS = 3_000;
/** Process exit and log flushing on a busy CI machine; generous on purpose. */
const EXIT_MARGIN_MS = 3_000;

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

interface GatewayProcess {
  readonly child: ChildProcess;
  readonly httpUrl: string;
  readonly wsUrl: string;
  readonly logs: LogLine[];
  /** Resolves with the exit code and signal once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

async function startGatewayProcess(): Promise<GatewayProcess> {
  // A clean environment, so no Tidings variable of the machine running the tests leaks in.
  const inherited = Object.fromEntries(
    ['PATH', 'HOME', 'TMPDIR', 'LANG', 'SYSTEMROOT'].flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
  );
  if (startCommand[0] !== 'node') throw new Error(`npm start does not run node: ${startCommand.join(' ')}`);
  const child = spawn(process.execPath, startCommand.slice(1), {
    cwd: repoRoot,
    env: {
      ...inherited,
      PORT: '0',
      LOG_LEVEL: 'info',
      // Development defaults log for people (LOG_FORMAT=pretty); this test reads the JSON lines.
      LOG_FORMAT: 'json',
      NODE_ENV: 'development',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const logs: LogLine[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ level: 0, msg: `(not JSON) ${line}` });
    }
  });
  let gone = false;
  void exited.then(() => (gone = true));
  try {
    await waitUntil(() => gone || logs.some((line) => line.msg === 'Tidings is listening'), 'the gateway process to listen', 15_000);
  } catch (error) {
    throw new Error(`${(error as Error).message}\nstdout: ${JSON.stringify(logs)}\nstderr: ${stderr}`);
  }
  if (gone) throw new Error(`the gateway process exited during start-up\nstdout: ${JSON.stringify(logs)}\nstderr: ${stderr}`);
  const listening = logs.find((line) => line.msg === 'Tidings is listening') as LogLine;
  // HOST is left at its default (0.0.0.0), so the logged URL says localhost; connect over IPv4.
  const url = new URL(String(listening['url']));
  expect(url.pathname).toBe('/graphql');
  url.hostname = '127.0.0.1';
  return {
    child,
    httpUrl: url.toString(),
    wsUrl: url.toString().replace(/^http/, 'ws'),
    logs,
    exited,
    stderr: () => stderr,
  };
}

/** A token signed with the public development secret, which the process uses without JWT_SECRET. */
const devToken = (sub: string, roles: Array<'user' | 'service'> = ['user']) => tokenFor(sub, roles, { secret: DEVELOPMENT_JWT_SECRET });

/** Subscribes over graphql-ws and waits until an event published over HTTP arrives. */
async function liveSubscriber(gateway: GatewayProcess, hotelId: string) {
  const ws = connectWs(gateway.wsUrl, await devToken('alice'));
  const prices = record(ws.client, PRICE_UPDATED, { hotelId });
  const service = await devToken('pricing-service', ['service']);
  // There is no subscribe acknowledgement: publish until the subscription sees one.
  await waitUntil(async () => {
    const response = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
      body: JSON.stringify({ query: PUBLISH_PRICE, variables: priceInput(hotelId) }),
    });
    expect(response.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    return prices.results.length > 0;
  }, 'the subscription to receive an event');
  expect(prices.results[0]?.data?.['priceUpdated']).toMatchObject({ hotelId });
  return { ws, prices };
}

/** Sends the signal; resolves with the exit and how long it took. */
async function stopWith(gateway: GatewayProcess, signal: NodeJS.Signals) {
  const startedAt = Date.now();
  gateway.child.kill(signal);
  const timeout = SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS;
  const outcome = await Promise.race([
    gateway.exited,
    new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), timeout)),
  ]);
  return { outcome, elapsedMs: Date.now() - startedAt };
}

describe('the gateway process (npm start) on a termination signal', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('on %s tells WebSocket clients to reconnect (1001) and exits 0 within SHUTDOWN_TIMEOUT_MS', async (signal) => {
    const gateway = await startGatewayProcess();
    const { ws, prices } = await liveSubscriber(gateway, 'hotel-1');

    const { outcome } = await stopWith(gateway, signal);
    expect(outcome, `stderr: ${gateway.stderr()}`).toEqual({ code: 0, signal: null });
    expect((await ws.waitForClose()).code).toBe(1001);
    await waitUntil(() => prices.isComplete(), 'the subscription to end');
    expect(gateway.logs.map((line) => line.msg)).toEqual(expect.arrayContaining(['signal received', 'shutting down', 'stopped']));
    expect(gateway.logs.find((line) => line.msg === 'signal received')).toMatchObject({ signal });
    expect(gateway.logs.filter((line) => line.level >= 50)).toEqual([]); // no error or fatal lines
  });

  it('exits within the deadline even when a peer never answers the close frame', async () => {
    const gateway = await startGatewayProcess();
    const { ws } = await liveSubscriber(gateway, 'hotel-2');
    const silent = await openRawSocket(gateway.wsUrl);
    await silent.init(await devToken('bob'));
    // Stop reading: the server's close frame is never seen, so never answered.
    (silent.socket as unknown as { _socket: { pause(): void } })._socket.pause();

    const { outcome, elapsedMs } = await stopWith(gateway, 'SIGTERM');
    expect(outcome, `stderr: ${gateway.stderr()}`).toEqual({ code: 0, signal: null });
    expect(elapsedMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS);
    // The well-behaved client was told to reconnect all the same.
    expect((await ws.waitForClose()).code).toBe(1001);
    expect(gateway.logs.map((line) => line.msg)).toContain('stopped');
  });
});
