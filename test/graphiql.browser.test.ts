import { mkdir, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { topics } from '../src/events/topics.js';
import { GRAPHIQL_ASSETS_PATH } from '../src/server/graphiql-page.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { launchBrowser, screenshot } from './support/browser.js';
import { priceInput, PUBLISH_PRICE } from './support/operations.js';

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

/** What the gateway answered, as it answered it: the browser's cache hits never get here. */
interface Served {
  readonly path: string;
  readonly status: number;
}

/** What the browser received for one request, from the network or its cache. */
interface Received {
  readonly path: string;
  readonly status: number;
  readonly encoding: string | undefined;
  readonly contentType: string | undefined;
  /** The body as sent (Content-Length: encoded bytes), headers aside. */
  readonly contentLength: number;
}

function recordServed(server: { on(event: 'request', listener: (request: IncomingMessage, response: ServerResponse) => void): unknown }): Served[] {
  const served: Served[] = [];
  server.on('request', (request, response) => {
    const path = request.url ?? '';
    response.on('finish', () => served.push({ path: path.split('?', 1)[0] as string, status: response.statusCode }));
  });
  return served;
}

function recordReceived(page: Page): Received[] {
  const received: Received[] = [];
  page.on('requestfinished', (request) => {
    void (async () => {
      const response = await request.response();
      if (!response) return;
      const headers = await response.allHeaders();
      received.push({
        path: new URL(request.url()).pathname,
        status: response.status(),
        encoding: headers['content-encoding'],
        contentType: headers['content-type'],
        contentLength: Number(headers['content-length'] ?? 0),
      });
    })();
  });
  return received;
}

const isAsset = (path: string) => path.startsWith(`${GRAPHIQL_ASSETS_PATH}/`);

/** Runs one of the example document's two operations (GraphiQL asks which). */
async function run(page: Page, operationName: string) {
  await page.locator('.graphiql-execute-button').click();
  await page.getByRole('menuitem', { name: operationName }).click();
}

describe('GraphiQL in a real browser', () => {
  it('loads from its hashed files, runs a query and a subscription over WebSocket with ?token, and loads again from cache', async () => {
    // As on a developer's machine (the development secret turns both on): GraphiQL fetches the schema.
    const gateway = await startGateway({ GRAPHIQL: 'true', INTROSPECTION: 'true' });
    const served = recordServed(gateway.app.httpServer);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const watch = (page: Page) => {
      page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      return page;
    };
    const page = watch(await context.newPage());
    const firstLoad = recordReceived(page);
    const sockets: string[] = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));

    const url = `${gateway.httpUrl}?token=${await tokenFor('alice')}`;
    await page.goto(url);
    // The editor shows the example subscription: GraphiQL's bundle, styles and workers came from
    // /graphiql/assets/.
    await page.getByText('subscription LivePrices', { exact: false }).first().waitFor({ timeout: 15_000 });

    // A query over HTTP, with the token of ?token in its Authorization header.
    await run(page, 'Me');
    await expect.poll(async () => (await page.locator('.result-window').textContent()) ?? '', { timeout: 10_000 }).toMatch(/"id":\s*"alice"/);

    // The subscription over WebSocket, with the token in connection_init.
    await run(page, 'LivePrices');
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'));
    expect(sockets.some((socket) => socket.endsWith('/graphql'))).toBe(true);
    // Signed in as alice over the WebSocket too, not anonymous.
    expect(gateway.app.stats()).toMatchObject({ connections: { websocket: 1 }, uniqueUsers: 1, usersByRole: { user: 1 } });
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1', 15_900));
    await expect
      .poll(async () => (await page.locator('.result-window').textContent()) ?? '', { timeout: 10_000 })
      .toMatch(/"priceUpdated".*"159\.00"/s);
    await screenshot(page, 'graphiql-subscription');

    // Every file came from the gateway's assets, in brotli (Chromium accepts it).
    const firstAssets = served.filter((entry) => isAsset(entry.path));
    for (const name of [/\/graphiql\.\w+\.js$/, /\/graphiql\.\w+\.css$/, /\/graphql\.worker\.\w+\.js$/, /\/editor\.worker\.\w+\.js$/]) {
      expect(firstAssets.some((entry) => name.test(entry.path)), String(name)).toBe(true);
    }
    expect(firstAssets.every((entry) => entry.status === 200)).toBe(true);
    const receivedAssets = firstLoad.filter((entry) => isAsset(entry.path));
    expect(receivedAssets.length).toBeGreaterThanOrEqual(2);
    expect(receivedAssets.filter((entry) => entry.path.endsWith('.js') || entry.path.endsWith('.css')).every((entry) => entry.encoding === 'br')).toBe(true);
    const firstPage = firstLoad.find((entry) => entry.contentType?.startsWith('text/html'));
    expect(firstPage?.encoding).toBe('br');

    // A second load in the same browser: only the page reaches the gateway; its files come
    // from the browser's cache (immutable), or at most a 304.
    const servedBefore = served.length;
    const second = watch(await context.newPage());
    const secondLoad = recordReceived(second);
    await second.goto(url, { waitUntil: 'networkidle' });
    // GraphiQL restores the tabs it kept (localStorage): the editor is up again.
    await second.locator('.monaco-editor').first().waitFor({ timeout: 15_000 });
    await second.getByRole('tab', { name: 'LivePrices' }).first().waitFor({ timeout: 5_000 });
    const secondServed = served.slice(servedBefore);
    expect(secondServed.some((entry) => entry.path === '/graphql' && entry.status === 200)).toBe(true);
    expect(secondServed.filter((entry) => isAsset(entry.path) && entry.status !== 304)).toEqual([]);

    expect(problems).toEqual([]);
    await writeTransferReport({ first: { received: firstLoad, served: served.slice(0, servedBefore) }, second: { received: secondLoad, served: secondServed } });
    await context.close();
  }, 60_000);
});

/**
 * test-artifacts/graphiql-transfer.json: per load, the bodies that crossed the network (what the
 * browser received that the gateway served: not its cache hits), GraphiQL's page and files apart
 * from its GraphQL requests (the schema's introspection).
 */
async function writeTransferReport(loads: Record<'first' | 'second', { received: Received[]; served: Served[] }>) {
  const artifacts = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
  await mkdir(artifacts, { recursive: true });
  const summary = ({ received, served }: { received: Received[]; served: Served[] }) => {
    const unserved = served.map((entry) => `${entry.path} ${entry.status}`);
    const fromNetwork = received.filter((entry) => {
      const index = unserved.indexOf(`${entry.path} ${entry.status}`);
      if (index === -1) return false;
      unserved.splice(index, 1);
      return true;
    });
    const sum = (entries: Received[]) => entries.reduce((bytes, entry) => bytes + entry.contentLength, 0);
    const page = fromNetwork.filter((entry) => isAsset(entry.path) || entry.contentType?.startsWith('text/html'));
    return {
      pageAndFilesBytes: sum(page),
      graphqlRequestsBytes: sum(fromNetwork) - sum(page),
      fromNetwork,
      fromCache: received.filter((entry) => !fromNetwork.includes(entry)).map((entry) => entry.path),
    };
  };
  await writeFile(`${artifacts}graphiql-transfer.json`, `${JSON.stringify({ first: summary(loads.first), second: summary(loads.second) }, null, 2)}\n`);
}
