import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { buildApp } from '../src/app.js';
import { testConfig } from './support/gateway.js';
import { waitUntil } from './support/wait.js';
import { createLogger, LazyChildLogger } from '../src/logging/logger.js';

describe('LazyChildLogger', () => {
  it('writes through a child with the bindings, made only when first written to', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const parent = pino({ level: 'debug' }, sink);
    let children = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => (children++, child(...args))) as typeof parent.child;
    const log = new LazyChildLogger(parent, { operationId: 'op-1' });
    expect(children).toBe(0);
    log.info({ detail: 1 }, 'first');
    log.error('second %s', 'formatted');
    log.debug('third');
    expect(children).toBe(1);
    expect(lines.map(({ msg, operationId, detail, level }) => ({ msg, operationId, detail, level }))).toEqual([
      { msg: 'first', operationId: 'op-1', detail: 1, level: 30 },
      { msg: 'second formatted', operationId: 'op-1', detail: undefined, level: 50 },
      { msg: 'third', operationId: 'op-1', detail: undefined, level: 20 },
    ]);
  });
});

describe('start-up', () => {
  const capture = () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    return { lines, logger: pino({ level: 'info' }, sink) };
  };

  it('says in one line which development features are on and why', async () => {
    const { lines, logger } = capture();
    const app = buildApp(testConfig({ GRAPHIQL: 'true', DEV_TOKENS: 'true' }), { logger });
    await app.start();
    await app.stop();
    const featureLines = lines.filter((line) => String(line['msg']).startsWith('development features'));
    expect(featureLines).toHaveLength(1);
    expect(featureLines[0]).toMatchObject({
      level: 40,
      msg: 'development features on: GET /dev/token, GraphiQL',
      developmentFeatures: {
        devTokens: 'on (DEV_TOKENS=true)',
        graphiql: 'on (GRAPHIQL=true)',
        introspection: 'off (INTROSPECTION unset)',
        errorDetails: 'off (ERROR_DETAILS unset)',
      },
    });
  });

  it('says so when none is on', async () => {
    const { lines, logger } = capture();
    const app = buildApp(testConfig(), { logger });
    await app.start();
    await app.stop();
    expect(lines.filter((line) => String(line['msg']).startsWith('development features'))).toEqual([
      expect.objectContaining({ level: 30, msg: 'development features: none on' }),
    ]);
  });
});

/** Collects what a logger writes, as text. */
function textSink() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

/** What a request's log line could carry if redaction failed. */
const SECRET_TOKEN = 'eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.never-in-a-log-line';

function logSecrets(logger: ReturnType<typeof createLogger>) {
  logger.child({ headers: { authorization: `Bearer ${SECRET_TOKEN}`, host: 'gateway.example' } }).warn('refused a request');
  logger.info({ request: { Authorization: `Bearer ${SECRET_TOKEN}`, path: '/graphql' }, connectionParams: { token: SECRET_TOKEN } }, 'websocket connected');
}

describe('createLogger', () => {
  it('json: one object per line with level, time, instance and msg; credentials removed', () => {
    const sink = textSink();
    const logger = createLogger({ level: 'info', instanceId: 'gw-1', format: 'json', destination: sink.stream });
    logSecrets(logger);
    const lines = sink.text().trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toEqual([
      { level: 40, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), instance: 'gw-1', headers: { host: 'gateway.example' }, msg: 'refused a request' },
      { level: 30, time: expect.any(String), instance: 'gw-1', request: { path: '/graphql' }, msg: 'websocket connected' },
    ]);
    expect(sink.text()).not.toContain(SECRET_TOKEN);
  });

  it('pretty: time, level and message on one line, each field below it; credentials removed all the same', async () => {
    const sink = textSink();
    const logger = createLogger({ level: 'debug', instanceId: 'gw-1', format: 'pretty', destination: sink.stream });
    logSecrets(logger);
    logger.child({ connectionId: 'c-1' }).debug({ code: 1000 }, 'websocket closed');
    logger.error({ err: new Error('boom') }, 'unexpected error');
    await waitUntil(() => sink.text().includes('unexpected error'), 'the pretty lines');
    const text = sink.text();
    expect(text).not.toContain(SECRET_TOKEN);
    expect(text).not.toMatch(/authorization|connectionParams/i);
    const headers = text.split('\n').filter((line) => /^\S/.test(line));
    expect(headers).toEqual([
      expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: refused a request$/),
      expect.stringMatching(/^\[[\d:.]+\] INFO: websocket connected$/),
      expect.stringMatching(/^\[[\d:.]+\] DEBUG: websocket closed$/),
      expect.stringMatching(/^\[[\d:.]+\] ERROR: unexpected error$/),
    ]);
    // The fields, indented under their line; the instance id is left out (one process per terminal).
    expect(text).toContain('    headers: {\n      "host": "gateway.example"\n    }\n');
    expect(text).toContain('    connectionId: "c-1"\n    code: 1000\n');
    expect(text).toMatch(/ {4}err: \{\n.*"message": "boom"/s);
    expect(text).toContain('Error: boom\n');
    expect(text).not.toContain('gw-1');
    expect(text).not.toContain('{"level"');
  });

  it('pretty: a line is on stdout before the logger call returns, so a process that exits right after keeps it', () => {
    const script = [
      "import { createLogger } from './src/logging/logger.ts';",
      "const logger = createLogger({ level: 'info', instanceId: 'gw-1', format: 'pretty' });",
      `logger.child({ headers: { authorization: 'Bearer ${SECRET_TOKEN}' } }).fatal('about to crash');`,
      'process.exit(70);',
    ].join('\n');
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', env: cleanEnv({}) });
    expect(result.status, result.stderr).toBe(70);
    expect(result.stdout).toMatch(/^\[[\d:.]+\] FATAL: about to crash\n/);
    expect(result.stdout).not.toContain(SECRET_TOKEN);
  });
});

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
/** `npm run dev`'s command without --watch: the sources through tsx, as `npm start` runs the build. */
const devCommand = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { dev: string } }).scripts.dev
  .trim()
  .split(/\s+/)
  .filter((part) => part !== '--watch');

/** Only what a process needs from the machine, so no Tidings variable of the machine leaks in. */
function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(['PATH', 'HOME', 'TMPDIR', 'LANG'].flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])));
  return { ...inherited, ...env };
}

/** Starts the gateway with development settings (the public development secret) and `env`; returns its stdout so far and its URL. */
async function startDevelopmentGateway(env: Record<string, string>) {
  if (devCommand[0] !== 'node') throw new Error(`npm run dev does not run node: ${devCommand.join(' ')}`);
  const child = spawn(process.execPath, devCommand.slice(1), {
    cwd: repoRoot,
    env: cleanEnv({ NODE_ENV: 'development', HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'info', WEB_APP: 'false', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  await waitUntil(() => child.exitCode !== null || /Open GraphiQL/.test(stdout), 'the gateway to start', 20_000).catch((error: Error) => {
    throw new Error(`${error.message}\nstdout: ${stdout}\nstderr: ${stderr}`);
  });
  expect(child.exitCode, `stderr: ${stderr}`).toBeNull();
  const url = /(http:\/\/127\.0\.0\.1:\d+\/graphql)/.exec(stdout)?.[1];
  expect(url, stdout).toBeDefined();
  return {
    url: url as string,
    stdout: () => stdout,
    async stop() {
      child.kill('SIGTERM');
      expect(await exited, `stderr: ${stderr}`).toBe(0);
    },
  };
}

/** A request whose token is refused, which the gateway logs (the reason, never the token). */
async function sendRefusedToken(url: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET_TOKEN}` },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
  expect(await response.json()).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
}

describe('the gateway process logs', () => {
  it('for people by default in development: readable lines, not JSON, and no token', async () => {
    const gateway = await startDevelopmentGateway({});
    await sendRefusedToken(gateway.url);
    await waitUntil(() => gateway.stdout().includes('http authentication refused'), 'the refusal to be logged');
    await gateway.stop();
    const lines = gateway.stdout().trimEnd().split('\n');
    for (const line of lines) expect(() => JSON.parse(line), line).toThrow();
    const headers = lines.filter((line) => /^\S/.test(line));
    expect(headers.length).toBeGreaterThan(5);
    for (const line of headers) expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (DEBUG|INFO|WARN|ERROR|FATAL): \S/);
    expect(headers).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/\] INFO: Tidings is listening$/),
        expect.stringMatching(/\] WARN: development features on: /),
        expect.stringMatching(/\] INFO: http authentication refused$/),
        expect.stringMatching(/\] INFO: stopped$/),
      ]),
    );
    expect(gateway.stdout()).toContain(`    url: "${gateway.url}"\n`);
    expect(gateway.stdout()).toMatch(/\] INFO: http authentication refused\n {4}requestId: "[^"]+"\n {4}reason: "bad_signature"\n/);
    expect(gateway.stdout()).not.toContain(SECRET_TOKEN);
  }, 40_000);

  it('JSON lines with LOG_FORMAT=json, in development too', async () => {
    const gateway = await startDevelopmentGateway({ LOG_FORMAT: 'json' });
    await sendRefusedToken(gateway.url);
    await waitUntil(() => gateway.stdout().includes('http authentication refused'), 'the refusal to be logged');
    await gateway.stop();
    const lines = gateway.stdout().trimEnd().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string; [key: string]: unknown });
    expect(lines.map((line) => line.msg)).toEqual(expect.arrayContaining(['Tidings is listening', 'http authentication refused', 'stopped']));
    expect(lines.find((line) => line.msg === 'Tidings is listening')).toMatchObject({ level: 30, url: gateway.url, instance: expect.any(String), time: expect.any(String) });
    expect(gateway.stdout()).not.toContain(SECRET_TOKEN);
  }, 40_000);
});
