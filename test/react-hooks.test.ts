import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import sirv from 'sirv';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildApp, type App } from '../src/app.js';
import { topics } from '../src/events/topics.js';
import { expectText, launchBrowser } from './support/browser.js';
import { startGateway, testConfig, tokenFor } from './support/gateway.js';
import { PUBLISH_NOTIFICATION } from './support/operations.js';
import { freePort } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';

/**
 * @tidings/client/react in real Chromium against a real gateway: the page in
 * test/fixtures/react-hooks renders useTidingsConnection and useEventStream, and records what
 * they gave it (window.hookRecord).
 */

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
let outDir: string;
let server: Server;
let pageOrigin: string;
let browser: Browser;

interface HookRecord {
  events: string[];
  states: string[];
}

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'tidings-hooks-page-'));
  const build = promisify(execFile)(
    process.execPath,
    [join(repoRoot, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'test/fixtures/react-hooks/vite.config.ts', '--logLevel', 'warn'],
    // A development build: StrictMode mounts every component twice, so each hook must clean up
    // after itself (a subscription started twice would deliver every event twice).
    { cwd: repoRoot, timeout: 60_000, env: { ...process.env, NODE_ENV: 'development', HOOKS_PAGE_OUT_DIR: outDir } },
  );
  await Promise.all([build, launchBrowser().then((launched) => (browser = launched))]);
  server = createServer(sirv(outDir));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  pageOrigin = `http://127.0.0.1:${address.port}`;
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve));
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

async function openHooksPage(gatewayUrl: string, userId: string): Promise<Page> {
  const context = await browser.newContext();
  onTestFinished(() => context.close());
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  onTestFinished(() => expect(pageErrors).toEqual([]));
  const token = await tokenFor(userId);
  await page.goto(`${pageOrigin}/index.html?gateway=${encodeURIComponent(gatewayUrl)}&token=${encodeURIComponent(token)}`);
  return page;
}

const hookRecord = (page: Page) => page.evaluate(() => window.hookRecord as HookRecord);

const notification = (userId: string, notificationId: string) => ({ notificationId, userId, kind: 'MESSAGE', title: `Event ${notificationId}` });

const PUBLISH_NOTIFICATIONS = /* GraphQL */ `
  mutation PublishNotifications($inputs: [PublishNotificationInput!]!) {
    publishNotifications(inputs: $inputs) { eventId }
  }`;

describe('@tidings/client/react', () => {
  it('useEventStream calls back for every event of a burst of 1,000, in order, none coalesced', async () => {
    const gateway = await startGateway();
    const page = await openHooksPage(gateway.httpUrl, 'burst-user');
    await expectText(page.getByTestId('connection'), 'live');
    await gateway.waitForSubscribers(topics.userNotifications('burst-user'));

    const ids = Array.from({ length: 1_000 }, (_, index) => `n-${index}`);
    // One request: the gateway writes the 1,000 frames back to back, far faster than React renders.
    await gateway.publish(PUBLISH_NOTIFICATIONS, { inputs: ids.map((id) => notification('burst-user', id)) });

    await expectText(page.getByTestId('received'), /^1000$/, 15_000);
    expect((await hookRecord(page)).events).toEqual(ids);
  }, 60_000);

  it('useTidingsConnection renders every state across a gateway restart, and the stream goes on after it', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/graphql`;
    let app: App | undefined;
    const start = async () => {
      app = buildApp(testConfig({ PORT: String(port) }));
      await app.start();
    };
    onTestFinished(() => app?.stop());
    await start();

    const page = await openHooksPage(url, 'restart-user');
    await expectText(page.getByTestId('connection'), 'live');
    await app?.stop();
    await expectText(page.getByTestId('connection'), 'reconnecting');
    // offlineAfterMs is 1.5 s on the page.
    await expectText(page.getByTestId('connection'), 'offline', 5_000);
    await start();
    await expectText(page.getByTestId('connection'), 'live', 10_000);
    expect((await hookRecord(page)).states).toEqual(['connecting/websocket', 'live/websocket', 'reconnecting/websocket', 'offline/websocket', 'live/websocket']);

    // The subscription was started again on the new connection.
    await waitUntil(() => (app?.services.bus.subscriberCount(topics.userNotifications('restart-user')) ?? 0) === 1, 'the resubscribe');
    const serviceToken = await tokenFor('svc', ['service']);
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${serviceToken}` },
      body: JSON.stringify({ query: PUBLISH_NOTIFICATION, variables: { input: notification('restart-user', 'after-restart') } }),
    });
    expect(response.status).toBe(200);
    await expectText(page.getByTestId('received'), /^1$/);
    expect((await hookRecord(page)).events).toEqual(['after-restart']);
  }, 60_000);

  it('unmounting the component ends its subscription on the gateway; the connection stays', async () => {
    const gateway = await startGateway();
    const page = await openHooksPage(gateway.httpUrl, 'unmount-user');
    await expectText(page.getByTestId('connection'), 'live');
    const topic = topics.userNotifications('unmount-user');
    await gateway.waitForSubscribers(topic, 1);
    expect(gateway.app.services.bus.subscriberCount(topic)).toBe(1);

    await page.getByTestId('unmount').click();
    await expectText(page.getByTestId('received'), 'unmounted');
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topic) === 0, 'the subscription to end on the gateway');
    await gateway.publish(PUBLISH_NOTIFICATION, { input: notification('unmount-user', 'after-unmount') });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await hookRecord(page)).events).toEqual([]);
    await expectText(page.getByTestId('connection'), 'live');
  }, 30_000);
});
