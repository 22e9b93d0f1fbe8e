import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildApp, type App } from '../src/app.js';
import { topics } from '../src/events/topics.js';
import { buildWebApp, expectText, launchBrowser, openApp, screenshot, signIn, type AppPage } from './support/browser.js';
import { startGateway, testConfig } from './support/gateway.js';
import { freePort } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';

/**
 * The demo web app (client/app) in real headless Chromium against a real gateway: sign-in with
 * development tokens, every kind of event published from the app's service panel, typing between
 * two users, a streamed chat reply, and the connection badge across a gateway restart.
 */

const DEMO_CONVERSATION = 'conv-demo';
let browser: Browser;

beforeAll(async () => {
  // The gateway serves client/app/dist only if it exists when the gateway is built.
  await Promise.all([buildWebApp(), launchBrowser().then((launched) => (browser = launched))]);
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

const originOf = (httpUrl: string) => new URL(httpUrl).origin;

/** Resolves once the page's subscriptions for `userId` have reached the gateway. */
async function waitForDashboard(app: App, userId: string) {
  const bus = app.services.bus;
  await waitUntil(
    () =>
      bus.subscriberCount(topics.hotelPrices('hotel-1')) >= 1 &&
      bus.subscriberCount(topics.conversationMessages(DEMO_CONVERSATION)) >= 1 &&
      bus.subscriberCount(topics.userBookings(userId)) >= 1 &&
      bus.subscriberCount(topics.userNotifications(userId)) >= 1,
    `${userId}'s subscriptions`,
  );
}

function expectNoPageErrors(...pages: AppPage[]) {
  expect(pages.flatMap((page) => page.pageErrors)).toEqual([]);
}

describe('demo web app in a real browser', () => {
  it('signs in and shows a price, a message, a booking update and a notification published from the service panel', async () => {
    const gateway = await startGateway({ DEV_TOKENS: 'true' });
    const alice = await openApp(browser, originOf(gateway.httpUrl));
    await expectText(alice.page.getByRole('heading', { name: 'Pick a development user' }), 'Pick a development user');

    await signIn(alice, 'alice');
    await expectText(alice.byTestId('signed-in-as'), 'Alice');
    await expectText(alice.byTestId('connection-transport'), 'WebSocket');
    await waitForDashboard(gateway.app, 'alice');
    await screenshot(alice.page, 'browser-01-signed-in');

    await alice.byTestId('service-price-amount').fill('142.50');
    await alice.byTestId('publish-price').click();
    await expectText(alice.byTestId('price-hotel-1'), /142\.50/);
    await expectText(alice.byTestId('price-hotel-2'), /waiting/);

    await alice.byTestId('service-message-text').fill('Your room is ready, Alice');
    await alice.byTestId('publish-message').click();
    await expectText(alice.byTestId('message-list'), /Concierge.*Your room is ready, Alice/);

    await alice.byTestId('publish-booking').click();
    await expectText(alice.byTestId('booking-b-demo'), /Pending/);
    await expectText(alice.byTestId('toast').filter({ hasText: 'Booking b-demo' }), /Booking b-demo: Pending/);

    await alice.byTestId('service-notification-title').fill('Breakfast is served');
    await alice.byTestId('publish-notification').click();
    await expectText(alice.byTestId('toast').filter({ hasText: 'Breakfast' }), /Breakfast is served/);
    await expectText(alice.byTestId('unread-count'), /^1$/);
    await screenshot(alice.page, 'browser-02-events-published');

    // Opening the panel marks the notification read.
    await alice.byTestId('notifications-toggle').click();
    await expectText(alice.byTestId('notification-panel'), /Breakfast is served/);
    expect(await alice.byTestId('unread-count').count()).toBe(0);
    // Toasts go away by themselves.
    await expect.poll(() => alice.byTestId('toast').count(), { timeout: 8_000 }).toBe(0);
    expectNoPageErrors(alice);
  });

  it('shows Hank typing to Alice, then his message', async () => {
    const gateway = await startGateway({ DEV_TOKENS: 'true' });
    const origin = originOf(gateway.httpUrl);
    const [alice, hank] = await Promise.all([openApp(browser, origin), openApp(browser, origin)]);
    await Promise.all([signIn(alice, 'alice'), signIn(hank, 'hank')]);
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.conversationTyping(DEMO_CONVERSATION)) >= 2, 'both typing subscriptions');
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.conversationMessages(DEMO_CONVERSATION)) >= 2, 'both message subscriptions');
    await expect(alice.byTestId('typing-indicator').isVisible()).resolves.toBe(false);

    await hank.byTestId('composer-input').pressSequentially('Hi Alice, your room is ready', { delay: 5 });
    await expectText(alice.byTestId('typing-indicator'), 'Hank is typing…');
    expect(await alice.byTestId('typing-indicator').isVisible()).toBe(true);
    await screenshot(alice.page, 'browser-03-typing');

    await hank.byTestId('composer-send').click();
    await expectText(alice.byTestId('message-list'), /Hank.*Hi Alice, your room is ready/);
    await expectText(hank.byTestId('message-list'), /Hank.*Hi Alice, your room is ready/);
    await expect.poll(() => alice.byTestId('typing-indicator').isVisible()).toBe(false);
    await screenshot(alice.page, 'browser-04-message-received');
    expectNoPageErrors(alice, hank);
  });

  it('streams the assistant reply chunk by chunk', async () => {
    const gateway = await startGateway({ DEV_TOKENS: 'true', CHAT_CHUNK_DELAY_MS: '40' });
    const alice = await openApp(browser, originOf(gateway.httpUrl));
    await signIn(alice, 'alice');

    // Record every status the reply shows, to see it stream rather than appear at once.
    await alice.page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { chatStatuses: string[] }).chatStatuses = seen;
      new MutationObserver(() => {
        const status = document.querySelector('[data-testid="chat-reply"]')?.getAttribute('data-status');
        if (status && seen.at(-1) !== status) seen.push(status);
      }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    });
    await alice.byTestId('chat-input').fill('Is breakfast included?');
    await alice.byTestId('chat-send').click();

    const reply = alice.byTestId('chat-reply');
    await expect.poll(() => reply.getAttribute('data-status'), { timeout: 10_000 }).toBe('DONE');
    await expectText(reply, /^You said: "Is breakfast included\?" \(3 words\)\./);
    const statuses = await alice.page.evaluate(() => (window as unknown as { chatStatuses: string[] }).chatStatuses);
    expect(statuses.at(-1)).toBe('DONE');
    expect(statuses).toContain('CHUNK');
    await screenshot(alice.page, 'browser-05-chat-done');
    expectNoPageErrors(alice);
  });

  it('goes Offline when the gateway stops and Live again when it is back', { timeout: 40_000 }, async () => {
    const port = await freePort();
    let gateway: App | undefined;
    const startOnPort = async () => {
      gateway = buildApp(testConfig({ PORT: String(port), DEV_TOKENS: 'true' }));
      await gateway.start();
      return gateway;
    };
    await startOnPort();
    onTestFinished(() => gateway?.stop());

    const alice = await openApp(browser, `http://127.0.0.1:${port}`);
    await signIn(alice, 'alice');
    await waitForDashboard(gateway as App, 'alice');

    await gateway?.stop();
    await expectText(alice.byTestId('connection-badge'), /^(Reconnecting|Offline)$/);
    await expectText(alice.byTestId('connection-badge'), /^Offline$/, 8_000);
    await screenshot(alice.page, 'browser-06-offline');

    const restarted = await startOnPort();
    await expectText(alice.byTestId('connection-badge'), /^Live$/, 10_000);
    await screenshot(alice.page, 'browser-07-live-again');

    // The restarted gateway (no Redis) forgot the conversation's members: the app records them
    // again and resubscribes, so messages flow as before.
    await expect.poll(() => alice.byTestId('dashboard').getAttribute('data-recoveries'), { timeout: 5_000 }).toBe('1');
    await waitForDashboard(restarted, 'alice');
    await alice.byTestId('service-message-text').fill('Still here after the restart');
    await alice.byTestId('publish-message').click();
    await expectText(alice.byTestId('message-list'), /Still here after the restart/);
    expectNoPageErrors(alice);
  });
});
