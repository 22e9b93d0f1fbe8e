import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import sirv from 'sirv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { expectText, launchBrowser } from './support/browser.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { PUBLISH_NOTIFICATION, PUBLISH_PRICE, priceInput } from './support/operations.js';
import { waitUntil } from './support/wait.js';

/**
 * @tidings/client as a frontend installs it: `npm pack` in client/, the tarball installed into
 * fresh temporary projects with everything else from the npm registry, never this repository's
 * node_modules. A Vite + React + TypeScript app is type-checked against the published types,
 * built, and run in headless Chromium against a real gateway; a Node script receives a
 * notification over WebSocket.
 */

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/package-consumers/', import.meta.url));
const rootManifest = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
/** The versions this repository is developed against: what a consumer picks today. */
const versionOf = (name: string) => {
  const version = rootManifest.dependencies[name] ?? rootManifest.devDependencies[name];
  if (!version) throw new Error(`package.json names no version of ${name}`);
  return version;
};

/** npm in `cwd`, without the npm_* variables of the `npm test` that started vitest. */
function npm(cwd: string, args: string[], timeout = 240_000) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')));
  return run('npm', args, { cwd, env, timeout, maxBuffer: 16 * 1024 * 1024 });
}

const install = (cwd: string) => npm(cwd, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error']);

let workDir: string;
let tarball: string;
let viteApp: string;
let nodeProject: string;
let browser: Browser;
let packed: { size: number; unpackedSize: number; files: Array<{ path: string }> };

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'tidings-consumers-'));
  const { stdout } = await npm(repoRoot, ['pack', '--workspace', 'client', '--pack-destination', workDir, '--json', '--loglevel=error']);
  const [report] = JSON.parse(stdout) as Array<typeof packed & { filename: string }>;
  if (!report) throw new Error(`npm pack reported nothing: ${stdout}`);
  packed = report;
  tarball = join(workDir, report.filename);

  viteApp = join(workDir, 'vite-react');
  await cp(join(fixtures, 'vite-react'), viteApp, { recursive: true });
  await writeFile(
    join(viteApp, 'package.json'),
    JSON.stringify({
      name: 'consumer-vite-react',
      private: true,
      type: 'module',
      dependencies: {
        '@tidings/client': `file:${tarball}`,
        '@urql/core': versionOf('@urql/core'),
        graphql: versionOf('graphql'),
        react: versionOf('react'),
        'react-dom': versionOf('react-dom'),
        urql: versionOf('urql'),
      },
      devDependencies: {
        '@graphql-codegen/cli': versionOf('@graphql-codegen/cli'),
        '@graphql-codegen/client-preset': versionOf('@graphql-codegen/client-preset'),
        '@types/react': versionOf('@types/react'),
        '@types/react-dom': versionOf('@types/react-dom'),
        '@vitejs/plugin-react': versionOf('@vitejs/plugin-react'),
        typescript: versionOf('typescript'),
        vite: versionOf('vite'),
      },
    }),
  );

  nodeProject = join(workDir, 'node-script');
  await cp(join(fixtures, 'node-script'), nodeProject, { recursive: true });
  // Only the client and a WebSocket implementation: @urql/core and graphql come as its peers.
  await writeFile(
    join(nodeProject, 'package.json'),
    JSON.stringify({ name: 'consumer-node-script', private: true, type: 'module', dependencies: { '@tidings/client': `file:${tarball}`, ws: versionOf('ws') } }),
  );

  await Promise.all([install(viteApp), install(nodeProject), launchBrowser().then((launched) => (browser = launched))]);
}, 420_000);

afterAll(async () => {
  await browser?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('the packed @tidings/client', () => {
  it('ships the build, its types and the schema, and no sources', () => {
    const paths = packed.files.map((file) => file.path).sort();
    for (const expected of [
      'package.json',
      'README.md',
      'CHANGELOG.md',
      'codegen.example.ts',
      'schema.graphql',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/index.js.map',
      'dist/operations.js',
      'dist/react/index.js',
      'dist/react/index.d.ts',
      'dist/generated/graphql.d.ts',
      // The package's own operations by hash, for a gateway's TRUSTED_DOCUMENTS.
      'dist/persisted-documents.json',
    ]) {
      expect(paths).toContain(expected);
    }
    expect(paths.filter((path) => path.startsWith('src/') || path.endsWith('.ts') && !path.endsWith('.d.ts') && path !== 'codegen.example.ts')).toEqual([]);
    // The whole package, packed: a sanity bound that catches a stray directory in `files`.
    expect(packed.size).toBeLessThan(100_000);
  });

  it('installs into a fresh Vite + React project that type-checks, builds and shows a live price in Chromium', async () => {
    // Types for the app's own operation, from the schema in the package, with the package's example config.
    await cp(join(viteApp, 'node_modules', '@tidings', 'client', 'codegen.example.ts'), join(viteApp, 'codegen.ts'));
    await npm(viteApp, ['exec', '--', 'graphql-codegen', '--config', 'codegen.ts']);
    await npm(viteApp, ['exec', '--', 'tsc', '--noEmit', '-p', 'tsconfig.json']);
    await npm(viteApp, ['exec', '--', 'vite', 'build', '--logLevel', 'warn']);
    expect((await stat(join(viteApp, 'dist', 'index.html'))).isFile()).toBe(true);

    const gateway = await startGateway();
    // The app is served from its own origin, as a frontend usually is: the gateway is another origin.
    const server: Server = createServer(sirv(join(viteApp, 'dist'), { single: true }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const address = server.address();
      if (!address || typeof address === 'string') throw new Error('no address');
      const token = await tokenFor('package-user');
      const context = await browser.newContext();
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      await page.goto(`http://127.0.0.1:${address.port}/?gateway=${encodeURIComponent(gateway.httpUrl)}&token=${encodeURIComponent(token)}`);

      await expectText(page.getByTestId('connection'), 'live over websocket', 10_000);
      await expectText(page.getByTestId('viewer'), 'package-user');
      await expectText(page.getByTestId('price'), 'waiting');
      await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'));
      await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1', 15_250));
      await expectText(page.getByTestId('price'), 'DOUBLE 152.50 EUR');
      await expectText(page.getByTestId('own-amount'), '152.50');
      expect(pageErrors).toEqual([]);
      await context.close();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }, 120_000);

  it('installs into a fresh Node project without React or urql and receives a notification over WebSocket', async () => {
    // react and urql are optional peers: a plain Node consumer gets neither.
    expect(existsSync(join(nodeProject, 'node_modules', 'react'))).toBe(false);
    expect(existsSync(join(nodeProject, 'node_modules', 'urql'))).toBe(false);
    expect(existsSync(join(nodeProject, 'node_modules', '@urql', 'core'))).toBe(true);

    const gateway = await startGateway();
    const child = spawn(process.execPath, ['receive.mjs', gateway.httpUrl, await tokenFor('node-user')], { cwd: nodeProject, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await gateway.waitForSubscribers(topics.userNotifications('node-user'));
      await gateway.publish(PUBLISH_NOTIFICATION, {
        input: { notificationId: 'n-package', userId: 'node-user', kind: 'SYSTEM', title: 'Installed from a tarball', body: 'From a fresh project' },
      });
      const code = await Promise.race([exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit; stdout ${stdout} stderr ${stderr}`)), 15_000))]);
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines).toContainEqual({ status: 'live', transport: 'websocket' });
      expect(lines.filter((line) => 'notification' in line)).toEqual([
        {
          notification: expect.objectContaining({ notificationId: 'n-package', userId: 'node-user', kind: 'SYSTEM', title: 'Installed from a tarball', body: 'From a fresh project' }),
        },
      ]);
      // dispose() is the last state change.
      expect(lines.at(-1)).toEqual({ status: 'offline', transport: 'websocket' });
    } finally {
      child.kill();
    }
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.userNotifications('node-user')) === 0, 'the script to unsubscribe');
  }, 60_000);
});
