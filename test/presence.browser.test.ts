import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWebApp, expectText, launchBrowser, openApp, screenshot, signIn, type AppPage } from './support/browser.js';
import { startGateway } from './support/gateway.js';

/**
 * Presence in the demo web app (client/app), in real headless Chromium against a real gateway:
 * the conversation card's dot per member (usePresence) and the booking's other party online or
 * not (useOnline with the bookingId), as a second user opens the app and closes it again.
 */

let browser: Browser;
/** The app's own build (not client/app/dist, which test/browser.test.ts builds at the same time). */
let webAppDir: string;

beforeAll(async () => {
  webAppDir = await mkdtemp(join(tmpdir(), 'tidings-presence-app-'));
  await Promise.all([buildWebApp(webAppDir), launchBrowser().then((launched) => (browser = launched))]);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  if (webAppDir) await rm(webAppDir, { recursive: true, force: true });
});

/** A short grace period and coalescing interval, so a closed tab shows within a second. */
const GRACE_MS = 300;
const presenceGateway = () =>
  startGateway({ DEV_TOKENS: 'true', WEB_APP: 'true', WEB_APP_DIR: webAppDir, PRESENCE_GRACE_MS: String(GRACE_MS), PRESENCE_COALESCE_MS: '100' });

const originOf = (httpUrl: string) => new URL(httpUrl).origin;

/** A member's entry in the conversation card: its data-present, and its text for a screen reader. */
async function memberState(member: Locator) {
  return { present: await member.getAttribute('data-present'), text: ((await member.textContent()) ?? '').trim() };
}

function expectNoPageErrors(...pages: AppPage[]) {
  expect(pages.flatMap((page) => page.pageErrors)).toEqual([]);
}

describe('presence in the demo web app', () => {
  it("turns Hank's dot on in Alice's conversation card when he opens the app, and off when he closes it", async () => {
    const gateway = await presenceGateway();
    const origin = originOf(gateway.httpUrl);
    const alice = await openApp(browser, origin);
    await signIn(alice, 'alice');

    const list = alice.page.getByRole('list', { name: 'Who is here' });
    await expect.poll(() => list.getAttribute('data-status')).toBe('live');
    const hankInAlice = alice.byTestId('presence-hank');
    // Alice's own tab holds her there; nobody else is.
    await expect.poll(() => memberState(alice.byTestId('presence-alice'))).toEqual({ present: 'true', text: 'Alice (you), online' });
    await expect.poll(() => memberState(hankInAlice)).toEqual({ present: 'false', text: 'Hank, away' });
    await expect.poll(() => memberState(alice.byTestId('presence-root'))).toEqual({ present: 'false', text: 'Root, away' });
    expect(await hankInAlice.locator('.presence-dot').getAttribute('class')).toBe('presence-dot presence-off');
    await screenshot(alice.page, 'presence-01-alice-alone');

    const hank = await openApp(browser, origin);
    await signIn(hank, 'hank');
    await expect.poll(() => memberState(hankInAlice)).toEqual({ present: 'true', text: 'Hank, online' });
    expect(await hankInAlice.locator('.presence-dot').getAttribute('class')).toBe('presence-dot presence-on');
    // Hank's card has the snapshot: Alice was there before him.
    await expect.poll(() => memberState(hank.byTestId('presence-alice'))).toEqual({ present: 'true', text: 'Alice, online' });
    await expect.poll(() => memberState(hank.byTestId('presence-hank'))).toEqual({ present: 'true', text: 'Hank (you), online' });
    await screenshot(alice.page, 'presence-02-hank-joined');

    expectNoPageErrors(alice, hank);
    const closedAt = Date.now();
    await hank.context.close();
    await expect.poll(() => memberState(hankInAlice), { timeout: 5_000 }).toEqual({ present: 'false', text: 'Hank, away' });
    // Not at once: the grace period (a reload would have shown nothing).
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(GRACE_MS);
    expect(await memberState(alice.byTestId('presence-alice'))).toEqual({ present: 'true', text: 'Alice (you), online' });
    await screenshot(alice.page, 'presence-03-hank-left');
    expectNoPageErrors(alice);
  });

  it("shows Alice's booking with her host Hank online while his app is open, offline once he closes it", async () => {
    const gateway = await presenceGateway();
    const origin = originOf(gateway.httpUrl);
    const alice = await openApp(browser, origin);
    await signIn(alice, 'alice');
    await alice.byTestId('publish-booking').click();
    const booking = alice.byTestId('booking-b-demo');
    await expectText(booking, /Pending/);
    const party = booking.getByTestId('booking-party');
    await expectText(party, /^Your host Hank is offline$/);
    await expect.poll(() => party.getAttribute('data-online')).toBe('false');

    const hank = await openApp(browser, origin);
    await signIn(hank, 'hank');
    await expectText(party, /^Your host Hank is online$/);
    expect(await party.getAttribute('data-online')).toBe('true');
    await screenshot(alice.page, 'presence-04-host-online');
    // Hank sees the booking once it changes again, with his guest online.
    await hank.byTestId('publish-booking').click();
    await expectText(hank.byTestId('booking-b-demo').getByTestId('booking-party'), /^Your guest Alice is online$/);

    expectNoPageErrors(alice, hank);
    await hank.context.close();
    await expectText(party, /^Your host Hank is offline$/);
    expect(await party.getAttribute('data-online')).toBe('false');
    await screenshot(alice.page, 'presence-05-host-offline');
    expectNoPageErrors(alice);
  });
});
