import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import * as graphiql from '@graphql-yoga/render-graphiql/graphiql';
import { describe, expect, it } from 'vitest';
import { createGraphiQLPage, GRAPHIQL_ASSETS_PATH } from '../src/server/graphiql-page.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { decoded, rawRequest, type RawAnswer } from './support/raw-http.js';

/**
 * GraphiQL's page and its files over real HTTP: a small page, compressed when asked; the files
 * under content-hashed URLs, cached for a year, revalidated with 304, in brotli or gzip by the
 * client's Accept-Encoding. test/graphiql.browser.test.ts runs it in Chromium.
 */

const PAGE_BUDGET_BYTES = 20_000;
const HTML = { accept: 'text/html' };

/** The asset URLs a page refers to: its <script src>, <link href> and the workers' URLs. */
function assetPathsOf(html: string): string[] {
  return [...html.matchAll(/"(\/graphiql\/assets\/[^"]+)"/g)].map((match) => match[1] as string);
}

async function graphiqlGateway() {
  const gateway = await startGateway({ GRAPHIQL: 'true' });
  const page = await rawRequest(gateway.httpUrl, HTML);
  const origin = new URL(gateway.httpUrl).origin;
  const paths = assetPathsOf(decoded(page).toString('utf8'));
  const pathOf = (name: RegExp) => {
    const path = paths.find((candidate) => name.test(candidate));
    if (!path) throw new Error(`no asset matching ${name} in ${paths.join(', ')}`);
    return path;
  };
  return { gateway, page, origin, paths, pathOf, get: (path: string, headers: Record<string, string> = {}, method?: string) => rawRequest(origin + path, headers, method) };
}

function expectImmutable(answer: RawAnswer) {
  expect(answer.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  expect(answer.headers['vary']).toBe('Accept-Encoding');
  expect(answer.headers['etag']).toMatch(/^"[0-9a-f]{16}(-br|-gzip)?"$/);
}

describe('the GraphiQL page', () => {
  it('is a few kilobytes that load GraphiQL from hashed files, and embeds the ?token options as before', async () => {
    const { gateway, paths } = await graphiqlGateway();
    const token = await tokenFor('alice');
    const page = await rawRequest(`${gateway.httpUrl}?token=${token}`, HTML);
    expect(page.status).toBe(200);
    expect(page.headers['content-encoding']).toBeUndefined();
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    // It embeds the token: never kept by a cache.
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body.byteLength).toBeLessThan(PAGE_BUDGET_BYTES);
    const html = page.body.toString('utf8');
    expect(html).toContain('<title>Tidings GraphiQL</title>');
    expect(html).toContain(`"connectionParams":{"authorization":"Bearer ${token}"}`);
    expect(html).toContain(`"additionalHeaders":{"Authorization":"Bearer ${token}"}`);
    // Script, stylesheet, icon and the three Monaco workers.
    expect(paths.map((path) => path.replace(/\.[0-9a-f]{16}\./, '.*.')).sort()).toEqual(
      ['editor.worker.*.js', 'favicon.*.ico', 'graphiql.*.css', 'graphiql.*.js', 'graphql.worker.*.js', 'json.worker.*.js'].map((name) => `${GRAPHIQL_ASSETS_PATH}/${name}`),
    );
    expect(html).toContain(`<script src="${paths.find((path) => /graphiql\.\w+\.js$/.test(path))}"></script>`);
  });

  it('is compressed with brotli or gzip when the browser accepts it, by q-value', async () => {
    const { gateway, page: identity } = await graphiqlGateway();
    for (const [acceptEncoding, expected] of [
      ['gzip, deflate, br, zstd', 'br'],
      ['gzip', 'gzip'],
      ['br;q=0, gzip', 'gzip'],
      ['gzip;q=0.5, br;q=0.4', 'gzip'],
      ['identity', undefined],
    ] as const) {
      const page = await rawRequest(gateway.httpUrl, { ...HTML, 'accept-encoding': acceptEncoding });
      expect(page.headers['content-encoding'], acceptEncoding).toBe(expected);
      expect(page.headers['vary']).toContain('Accept-Encoding');
      expect(page.headers['cache-control']).toBe('no-store');
      expect(decoded(page).equals(identity.body)).toBe(true);
      if (expected) expect(page.body.byteLength).toBeLessThan(identity.body.byteLength * 0.7);
    }
  });

  it('cannot be broken out of by what it embeds', () => {
    const html = createGraphiQLPage().render({
      title: '</title><script>alert(1)</script>',
      defaultQuery: '# </script><script>alert(2)</script> <!-- ',
    });
    expect(html).not.toContain('alert(1)</script>');
    expect(html).not.toContain('<script>alert(2)');
    expect(html).not.toContain('<!-- ');
    expect(html).toContain('<title>&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>');
    expect(html).toContain('"defaultQuery":"# \\u003c/script\\u003e\\u003cscript\\u003ealert(2)\\u003c/script\\u003e \\u003c!-- "');
  });

  it("mirrors what @graphql-yoga/render-graphiql's own page wires: the worker labels and the global renderer", () => {
    // If a new version renames these, this fails before a browser does (src/server/graphiql-page.ts).
    const theirs = renderGraphiQL({});
    expect(theirs).toContain("self['MonacoEnvironment']");
    expect(theirs).toMatch(/getWorkerUrl: function \(moduleId, label\) \{\s*return workers\[label\];/);
    for (const label of ['editorWorkerService', 'json', 'graphql']) expect(theirs).toContain(`${label}: prepareBlob(`);
    expect(theirs).toContain('YogaGraphiQL.renderYogaGraphiQL(');
    expect(graphiql.js).toContain('YogaGraphiQL');
    expect(graphiql.favicon).toMatch(/^data:image\/x-icon;base64,/);
  });
});

describe("GraphiQL's files", () => {
  it('are served from memory with the right type, cached for a year under their hash, with an ETag', async () => {
    const { paths, get, pathOf } = await graphiqlGateway();
    const types: Array<[RegExp, string, string]> = [
      [/graphiql\.\w+\.js$/, 'text/javascript; charset=utf-8', graphiql.js],
      [/graphiql\.\w+\.css$/, 'text/css; charset=utf-8', graphiql.css],
      [/editor\.worker\.\w+\.js$/, 'text/javascript; charset=utf-8', graphiql.editorWorkerService],
      [/json\.worker\.\w+\.js$/, 'text/javascript; charset=utf-8', graphiql.jsonWorker],
      [/graphql\.worker\.\w+\.js$/, 'text/javascript; charset=utf-8', graphiql.graphqlWorker],
    ];
    for (const [name, contentType, source] of types) {
      const answer = await get(pathOf(name));
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe(contentType);
      expect(answer.headers['content-encoding']).toBeUndefined();
      expect(answer.headers['x-content-type-options']).toBe('nosniff');
      expectImmutable(answer);
      expect(answer.body.toString('utf8')).toBe(source);
    }
    const icon = await get(pathOf(/favicon\.\w+\.ico$/));
    expect(icon.headers['content-type']).toBe('image/x-icon');
    expect(`data:image/x-icon;base64,${icon.body.toString('base64')}`).toBe(graphiql.favicon);
    expect(paths).toHaveLength(6);
  });

  it('are sent in brotli or gzip as Accept-Encoding asks (q-values respected), identity otherwise', async () => {
    const { get, pathOf } = await graphiqlGateway();
    const path = pathOf(/graphiql\.\w+\.js$/);
    const identity = await get(path);
    const etags = new Set<string>();
    for (const [acceptEncoding, expected] of [
      ['gzip, deflate, br, zstd', 'br'],
      ['br', 'br'],
      ['gzip', 'gzip'],
      ['br;q=0, gzip', 'gzip'],
      ['gzip;q=1, br;q=0.9', 'gzip'],
      ['*', 'br'],
      ['br;q=0, gzip;q=0', undefined],
      ['deflate', undefined],
      ['', undefined],
    ] as const) {
      const answer = await get(path, acceptEncoding ? { 'accept-encoding': acceptEncoding } : {});
      expect(answer.status).toBe(200);
      expect(answer.headers['content-encoding'], acceptEncoding).toBe(expected);
      expectImmutable(answer);
      expect(Number(answer.headers['content-length'])).toBe(answer.body.byteLength);
      expect(decoded(answer).equals(identity.body)).toBe(true);
      if (expected) expect(answer.body.byteLength).toBeLessThan(identity.body.byteLength / 3);
      etags.add(answer.headers['etag'] as string);
    }
    // One ETag per variant: a cache never answers a gzip request with its brotli copy's tag.
    expect(etags.size).toBe(3);
  });

  it('answer a revalidation with 304 when the ETag matches, and HEAD with the headers only', async () => {
    const { get, pathOf } = await graphiqlGateway();
    const path = pathOf(/graphiql\.\w+\.css$/);
    const br = { 'accept-encoding': 'br' };
    const first = await get(path, br);
    const etag = first.headers['etag'] as string;

    for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const again = await get(path, { ...br, 'if-none-match': ifNoneMatch });
      expect(again.status, ifNoneMatch).toBe(304);
      expect(again.body.byteLength).toBe(0);
      expect(again.headers['etag']).toBe(etag);
      expectImmutable(again);
    }
    // The gzip copy has another tag: the brotli one does not validate it.
    const gzip = await get(path, { 'accept-encoding': 'gzip', 'if-none-match': etag });
    expect(gzip.status).toBe(200);
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect((await get(path, { ...br, 'if-none-match': '"something-else"' })).status).toBe(200);

    const head = await get(path, br, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.byteLength).toBe(0);
    expect(head.headers['content-length']).toBe(first.headers['content-length']);
    expect(head.headers['content-encoding']).toBe('br');
    expect(head.headers['etag']).toBe(etag);
  });

  it('are 404 for an unknown name or a stale hash, and 405 for anything but GET and HEAD', async () => {
    const { get, pathOf } = await graphiqlGateway();
    const path = pathOf(/graphiql\.\w+\.js$/);
    for (const unknown of [
      `${GRAPHIQL_ASSETS_PATH}/nope.js`,
      path.replace(/\.[0-9a-f]{16}\./, '.0000000000000000.'),
      `${GRAPHIQL_ASSETS_PATH}/`,
    ]) {
      const answer = await get(unknown);
      expect(answer.status, unknown).toBe(404);
      expect(answer.headers['cache-control']).not.toMatch(/immutable/);
    }
    expect((await get(`${path}?v=1`)).status).toBe(200);
    const post = await get(path, {}, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers['allow']).toBe('GET, HEAD');
  });

  it('are not served when GraphiQL is disabled', async () => {
    const { paths } = await graphiqlGateway();
    const disabled = await startGateway({ GRAPHIQL: 'false' });
    const origin = new URL(disabled.httpUrl).origin;
    const page = await rawRequest(disabled.httpUrl, HTML);
    expect(page.body.toString('utf8')).not.toContain('GraphiQL');
    expect(paths.length).toBeGreaterThan(0);
    for (const path of paths) {
      const answer = await rawRequest(origin + path);
      expect(answer.status, path).toBe(404);
      expect(answer.body.toString('utf8')).not.toContain('YogaGraphiQL');
    }
  });
});
