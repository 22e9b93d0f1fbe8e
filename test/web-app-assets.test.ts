import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWebApp } from './support/browser.js';
import { startGateway } from './support/gateway.js';
import { decoded, rawRequest } from './support/raw-http.js';

/**
 * The demo web app's files as the gateway serves them from a real build (its own directory, not
 * client/app/dist, which test/browser.test.ts builds): brotli or gzip copies made at build time,
 * chosen by Accept-Encoding with q-values; hashed files cached for a year, index.html revalidated.
 */

let directory: string;
beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'tidings-web-app-build-'));
  await buildWebApp(directory);
}, 90_000);
afterAll(() => {
  if (directory) rmSync(directory, { recursive: true, force: true });
});

async function webAppGateway() {
  const gateway = await startGateway({ WEB_APP: 'true', WEB_APP_DIR: directory });
  const origin = new URL(gateway.httpUrl).origin;
  const index = await rawRequest(`${origin}/app/`);
  const html = index.body.toString('utf8');
  const script = /<script type="module" crossorigin src="(\/app\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  const stylesheet = /<link rel="stylesheet" crossorigin href="(\/app\/assets\/[^"]+\.css)"/.exec(html)?.[1];
  if (!script || !stylesheet) throw new Error(`no script or stylesheet in ${html}`);
  return { origin, index, script, stylesheet };
}

describe("the web app's files", () => {
  it('are sent in brotli or gzip as Accept-Encoding asks (q-values respected), identity otherwise', async () => {
    const { origin, script, stylesheet } = await webAppGateway();
    for (const path of [script, stylesheet]) {
      const identity = await rawRequest(origin + path);
      expect(identity.status).toBe(200);
      expect(identity.headers['content-encoding']).toBeUndefined();
      for (const [acceptEncoding, expected] of [
        ['gzip, deflate, br, zstd', 'br'],
        ['gzip', 'gzip'],
        ['br;q=0, gzip', 'gzip'],
        ['gzip;q=1, br;q=0.5', 'gzip'],
        ['br;q=0, gzip;q=0', undefined],
        ['identity', undefined],
      ] as const) {
        const answer = await rawRequest(origin + path, { 'accept-encoding': acceptEncoding });
        expect(answer.status).toBe(200);
        expect(answer.headers['content-encoding'], `${path} ${acceptEncoding}`).toBe(expected);
        expect(answer.headers['vary']).toBe('Accept-Encoding');
        expect(answer.headers['content-type']).toMatch(path.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
        expect(decoded(answer).equals(identity.body)).toBe(true);
        if (expected) expect(answer.body.byteLength).toBeLessThan(identity.body.byteLength / 2);
      }
    }
  });

  it('are cached for a year when their name is hashed; index.html is revalidated', async () => {
    const { origin, index, script } = await webAppGateway();
    const asset = await rawRequest(origin + script, { 'accept-encoding': 'br' });
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(asset.headers['etag']).toBeTruthy();
    const again = await rawRequest(origin + script, { 'accept-encoding': 'br', 'if-none-match': asset.headers['etag'] as string });
    expect(again.status).toBe(304);

    expect(index.headers['cache-control']).toBe('no-cache');
    const compressedIndex = await rawRequest(`${origin}/app/`, { 'accept-encoding': 'br' });
    expect(compressedIndex.headers['content-encoding']).toBe('br');
    expect(compressedIndex.headers['cache-control']).toBe('no-cache');
    // The single-page fallback (a client-side route) is index.html, revalidated as well.
    const route = await rawRequest(`${origin}/app/some/route`, { 'accept-encoding': 'gzip' });
    expect(route.status).toBe(200);
    expect(route.headers['content-encoding']).toBe('gzip');
    expect(route.headers['cache-control']).toBe('no-cache');
    expect(decoded(route).equals(index.body)).toBe(true);
  });
});
