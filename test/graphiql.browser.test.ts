import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { topics } from '../src/events/topics.js';
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

describe('GraphiQL in a real browser', () => {
  it('opens with the example subscription, takes ?token, and runs it over WebSocket', async () => {
    const gateway = await startGateway({ GRAPHIQL: 'true' });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    const sockets: string[] = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));

    await page.goto(`${gateway.httpUrl}?token=${await tokenFor('alice')}`);
    // Bundled GraphiQL (no CDN): the editor shows the example subscription.
    await page.getByText('subscription LivePrices', { exact: false }).first().waitFor({ timeout: 15_000 });
    await page.locator('.graphiql-execute-button').click();
    // Two operations in the example: pick the subscription when GraphiQL asks.
    const pick = page.getByRole('menuitem', { name: 'LivePrices' });
    if (await pick.isVisible({ timeout: 2_000 }).catch(() => false)) await pick.click();

    await gateway.waitForSubscribers(topics.hotelPrices('hotel-1'));
    expect(sockets.some((url) => url.endsWith('/graphql'))).toBe(true);
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-1', 15_900));
    await expect
      .poll(async () => (await page.locator('.result-window').textContent()) ?? '', { timeout: 10_000 })
      .toMatch(/"priceUpdated".*"159\.00"/s);
    await screenshot(page, 'graphiql-subscription');
    expect(pageErrors).toEqual([]);
    await context.close();
  }, 45_000);
});
