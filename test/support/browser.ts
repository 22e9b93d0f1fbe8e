import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { expect, onTestFinished } from 'vitest';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const artifacts = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

/** Debian's Chromium. Never `playwright install`: the tests use the system browser. */
export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/**
 * Builds client/app into client/app/dist, as `npm run app:build` does, or into `outDir` (a test's
 * own directory, so that builds in parallel test files do not empty each other's).
 */
export async function buildWebApp(outDir?: string): Promise<void> {
  await promisify(execFile)(
    process.execPath,
    [
      fileURLToPath(new URL('../../node_modules/vite/bin/vite.js', import.meta.url)),
      'build',
      '--config',
      'client/app/vite.config.ts',
      '--logLevel',
      'warn',
      ...(outDir ? ['--outDir', outDir, '--emptyOutDir'] : []),
    ],
    { cwd: repoRoot, timeout: 60_000 },
  );
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
    ],
  });
}

export interface AppPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught exceptions in the page: a test expects none. */
  readonly pageErrors: string[];
  byTestId(id: string): Locator;
}

/** Opens the demo app at `${origin}/app/` in a fresh context (1280×900), closed when the test ends. */
export async function openApp(browser: Browser, origin: string): Promise<AppPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
  onTestFinished(() => context.close());
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(`${origin}/app/`);
  return { context, page, pageErrors, byTestId: (id) => page.getByTestId(id) };
}

/** Picks a development user in the header and waits for the connection to be live. */
export async function signIn(app: AppPage, userId: 'alice' | 'hank' | 'root'): Promise<void> {
  await app.byTestId(`sign-in-${userId}`).click();
  await expectText(app.byTestId('connection-badge'), /^Live$/);
}

/** Polls the locator's text until it matches (the page updates asynchronously). */
export async function expectText(locator: Locator, pattern: RegExp | string, timeout = 5_000): Promise<void> {
  await expect
    .poll(async () => ((await locator.count()) > 0 ? ((await locator.first().textContent()) ?? '') : ''), { timeout, interval: 25 })
    .toMatch(pattern);
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(artifacts, { recursive: true });
  const path = `${artifacts}${name}.png`;
  // Let entrance animations (toasts) finish, so the picture shows the settled page.
  await page.waitForTimeout(300);
  await page.screenshot({ path, fullPage: true });
  return path;
}
