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
import { ADD_MEMBERS, NEW_MESSAGE, NOTIFICATION_CREATED, PUBLISH_NOTIFICATION } from './support/operations.js';
import { freePort, randomPrefix, startRedis } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * @tidings/client/react in real Chromium against a real gateway: the page in
 * test/fixtures/react-hooks renders useTidingsConnection and useEventStream (or, asked to,
 * usePresence and useOnline), and records what they gave it (window.hookRecord).
 */

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
let outDir: string;
let server: Server;
let pageOrigin: string;
let browser: Browser;

interface HookRecord {
  events: string[];
  states: string[];
  presence: string[];
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

/** The hooks page for `userId`; `extra` asks for the presence hooks (see the page's Presence and Online). */
async function openHooksPage(gatewayUrl: string, userId: string, extra: Record<string, string> = {}): Promise<Page> {
  const context = await browser.newContext();
  onTestFinished(() => context.close());
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  onTestFinished(() => expect(pageErrors).toEqual([]));
  const token = await tokenFor(userId);
  const query = new URLSearchParams({ gateway: gatewayUrl, token, ...extra });
  await page.goto(`${pageOrigin}/index.html?${query}`);
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

  it('usePresence shows the snapshot, then who joins and leaves; another conversation starts from nothing', async () => {
    const gateway = await startGateway({ PRESENCE_GRACE_MS: '200', PRESENCE_COALESCE_MS: '50' });
    for (const conversationId of ['conv-hooks', 'conv-hooks-2']) await gateway.publish(ADD_MEMBERS, { conversationId, userIds: ['hooks-ann', 'hooks-ben'] });
    // Ben is in the second conversation before Ann opens the page: its snapshot will have him.
    const benThere = connectWs(gateway.wsUrl, await tokenFor('hooks-ben'));
    record(benThere.client, NEW_MESSAGE, { conversationId: 'conv-hooks-2' });
    await gateway.waitForSubscribers(topics.conversationMessages('conv-hooks-2'));

    const page = await openHooksPage(gateway.httpUrl, 'hooks-ann', { presence: 'conv-hooks', other: 'conv-hooks-2' });
    const presence = page.getByTestId('presence');
    // The snapshot: Ann alone (her own subscription holds her there).
    await expectText(presence, /^live: hooks-ann$/);

    // Ben opens the conversation from another connection: JOINED.
    const ben = connectWs(gateway.wsUrl, await tokenFor('hooks-ben'));
    const benMessages = record(ben.client, NEW_MESSAGE, { conversationId: 'conv-hooks' });
    await expectText(presence, /^live: hooks-ann,hooks-ben$/);
    // He closes it: LEFT, after the grace period.
    benMessages.unsubscribe();
    await expectText(presence, /^live: hooks-ann$/);

    // Another conversation: nothing of the first one's, until its own snapshot.
    await page.getByTestId('switch').click();
    await expectText(presence, /^live: hooks-ann,hooks-ben$/);
    expect((await hookRecord(page)).presence).toEqual([
      'conv-hooks connecting ',
      'conv-hooks live hooks-ann',
      'conv-hooks live hooks-ann,hooks-ben',
      'conv-hooks live hooks-ann',
      'conv-hooks-2 connecting ',
      'conv-hooks-2 live hooks-ann,hooks-ben',
    ]);
    // Only the second conversation's subscription is left on the gateway.
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.conversationPresence('conv-hooks')) === 0, 'the first presence subscription to end');
    expect(gateway.app.services.bus.subscriberCount(topics.conversationPresence('conv-hooks-2'))).toBe(1);
  }, 30_000);

  it('useOnline shows each user online or not, then every change; a user the viewer may not see is an error', async () => {
    const gateway = await startGateway({ PRESENCE_GRACE_MS: '200', PRESENCE_COALESCE_MS: '50' });
    await gateway.publish(ADD_MEMBERS, { conversationId: 'conv-online', userIds: ['hooks-cat', 'hooks-dan'] });
    const page = await openHooksPage(gateway.httpUrl, 'hooks-cat', { online: 'hooks-dan,hooks-cat', conversation: 'conv-online' });
    const online = page.getByTestId('online');
    // Cat's own page is a connection: she is online, Dan is not.
    await expectText(online, /^live: hooks-dan=false,hooks-cat=true$/);

    // Dan connects (any subscription opens his connection) and goes away again.
    const dan = connectWs(gateway.wsUrl, await tokenFor('hooks-dan'));
    record(dan.client, NOTIFICATION_CREATED, {});
    await dan.waitForConnected();
    await expectText(online, /^live: hooks-dan=true,hooks-cat=true$/);
    await dan.client.dispose();
    await expectText(online, /^live: hooks-dan=false,hooks-cat=true$/);

    // Eve shares no conversation with Cat: refused, not a silent false.
    const stranger = await openHooksPage(gateway.httpUrl, 'hooks-cat', { online: 'hooks-eve', conversation: 'conv-online' });
    await expectText(stranger.getByTestId('online'), /^error: hooks-eve=\? .*may not see whether this user is online/);
  }, 30_000);

  it('usePresence and useOnline say stale while the connection is lost, and show the restarted subscription\'s state after it', async () => {
    // On Redis, so the conversation's members outlive the gateway; a second instance stays up.
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), PRESENCE_GRACE_MS: '200', PRESENCE_COALESCE_MS: '50' };
    const port = await freePort();
    let restarting: App | undefined;
    const start = async () => {
      restarting = buildApp(testConfig({ ...env, PORT: String(port) }));
      await restarting.start();
    };
    onTestFinished(() => restarting?.stop());
    await start();
    const other = await startGateway(env);
    await other.publish(ADD_MEMBERS, { conversationId: 'conv-stale', userIds: ['hooks-fay', 'hooks-gus'] });

    const page = await openHooksPage(`http://127.0.0.1:${port}/graphql`, 'hooks-fay', { presence: 'conv-stale', online: 'hooks-gus', conversation: 'conv-stale' });
    const presence = page.getByTestId('presence');
    const online = page.getByTestId('online');
    await expectText(presence, /^live: hooks-fay$/);
    await expectText(online, /^live: hooks-gus=false$/);

    await restarting?.stop();
    await expectText(presence, /^stale: hooks-fay$/);
    await expectText(online, /^stale: hooks-gus=false$/);
    // While Fay's page is away, Gus opens the conversation on the other instance: she misses that change.
    const gus = connectWs(other.wsUrl, await tokenFor('hooks-gus'));
    record(gus.client, NEW_MESSAGE, { conversationId: 'conv-stale' });
    await other.waitForSubscribers(topics.conversationMessages('conv-stale'));

    await start();
    await expectText(page.getByTestId('connection'), 'live', 10_000);
    // The restarted subscriptions' first state replaces what was shown.
    await expectText(presence, /^live: hooks-fay,hooks-gus$/);
    await expectText(online, /^live: hooks-gus=true$/);
    const shown = (await hookRecord(page)).presence;
    expect(shown.slice(shown.indexOf('conv-stale stale hooks-fay'))).toEqual(['conv-stale stale hooks-fay', 'conv-stale live hooks-fay,hooks-gus']);
  }, 60_000);
});
