/**
 * GraphiQL's page at GET /graphql: a few kilobytes of HTML that load GraphiQL from content-hashed
 * static files (static-assets.ts), instead of Yoga's renderGraphiQL, which inlines 9 MB of
 * JavaScript, CSS, workers and icon into every page view.
 *
 * The contract with @graphql-yoga/render-graphiql (5.x):
 * - We use its public, typed subpath `@graphql-yoga/render-graphiql/graphiql` (package.json
 *   `exports["./*"]`, typings/graphiql.d.ts): the strings `js`, `css`, `favicon` (a
 *   `data:image/x-icon;base64,…` URL), `editorWorkerService`, `jsonWorker` and `graphqlWorker`.
 * - We mirror the markup of its esm/index.js `renderGraphiQL(opts)`: `<title>` from
 *   `opts.title`, the icon (`opts.favicon` or its own), the CSS, `#root` in
 *   `body#body.no-focus-outline`, `self.MonacoEnvironment = { globalAPI: false, getWorkerUrl }`
 *   set before the bundle runs, then `YogaGraphiQL.renderYogaGraphiQL(root, opts)` (the bundle
 *   is a UMD that defines the `YogaGraphiQL` global when loaded by a classic script).
 * - Workers: its page turns each worker string into a Blob URL, and Monaco's `getWorkerUrl(moduleId,
 *   label)` returns the one for `label` (`editorWorkerService`, `json`, `graphql`); Monaco then
 *   calls `new Worker(url, { type: 'module' })`. We return the workers' same-origin asset URLs
 *   instead: a module worker needs a JavaScript Content-Type, which the assets have.
 * - The page is given to Yoga through its public `renderGraphiQL` option; Yoga still decides when
 *   to render it (GET, Accept: text/html, GraphiQL enabled) and passes graphiqlOptionsFor's options.
 * test/graphiql-assets.test.ts checks that the library's own page still wires these names, and
 * test/graphiql.browser.test.ts that GraphiQL runs from the assets in Chromium.
 */
import { css, editorWorkerService, favicon, graphqlWorker, js, jsonWorker } from '@graphql-yoga/render-graphiql/graphiql';
import type { GraphiQLOptions, Plugin } from 'graphql-yoga';
import { compress, negotiateEncoding } from './content-encoding.js';
import { createInMemoryAssets, type AssetSource, type InMemoryAssets } from './static-assets.js';

/** Where GraphiQL's files are served (only while GraphiQL is enabled). */
export const GRAPHIQL_ASSETS_PATH = '/graphiql/assets';

export interface GraphiQLPage {
  /** GraphiQL's files, for the HTTP server to route to. */
  readonly assets: InMemoryAssets;
  /** Yoga's `renderGraphiQL`: the page for graphiqlOptionsFor's options. */
  render(options?: GraphiQLOptions): string;
  /**
   * Compresses the page for clients that accept it (Yoga answers it with a bare
   * `Content-Type: text/html`), and forbids storing it: it embeds the ?token.
   */
  readonly plugin: Plugin;
}

const JAVASCRIPT = 'text/javascript; charset=utf-8';

/** Monaco's worker labels (getWorkerUrl's second argument) and our asset names for them. */
const WORKERS = {
  editorWorkerService: { name: 'editor.worker.js', body: editorWorkerService },
  json: { name: 'json.worker.js', body: jsonWorker },
  graphql: { name: 'graphql.worker.js', body: graphqlWorker },
} as const;

export function createGraphiQLPage(): GraphiQLPage {
  const icon = /^data:([\w.+/-]+);base64,([A-Za-z0-9+/=]+)$/.exec(favicon);
  const sources: AssetSource[] = [
    { name: 'graphiql.js', contentType: JAVASCRIPT, body: js },
    { name: 'graphiql.css', contentType: 'text/css; charset=utf-8', body: css },
    ...Object.values(WORKERS).map(({ name, body }) => ({ name, contentType: JAVASCRIPT, body })),
    // Should the library stop shipping a base64 data URL, the page keeps it inline.
    ...(icon ? [{ name: 'favicon.ico', contentType: icon[1] as string, body: Buffer.from(icon[2] as string, 'base64') }] : []),
  ];
  const assets = createInMemoryAssets({ basePath: GRAPHIQL_ASSETS_PATH, assets: sources });
  const urls = {
    js: assets.urlOf('graphiql.js'),
    css: assets.urlOf('graphiql.css'),
    favicon: icon ? assets.urlOf('favicon.ico') : favicon,
    workers: Object.fromEntries(Object.entries(WORKERS).map(([label, { name }]) => [label, assets.urlOf(name)])),
  };

  // `referrer` (not in Yoga's page): the page's URL carries ?token=, which the requests for its
  // files must not repeat in their Referer.
  const render = (options?: GraphiQLOptions) => /* HTML */ `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="referrer" content="strict-origin" />
    <title>${escapeHtml(options?.title || 'Yoga GraphiQL')}</title>
    <link rel="icon" href="${escapeHtml(options?.favicon || urls.favicon)}" />
    <link rel="stylesheet" href="${urls.css}" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run this app.</noscript>
    <div id="root"></div>
    <script>
      (function () {
        var workers = ${scriptJson(urls.workers)};
        self['MonacoEnvironment'] = {
          globalAPI: false,
          getWorkerUrl: function (moduleId, label) {
            return workers[label];
          },
        };
      })();
    </script>
    <script src="${urls.js}"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(window.document.querySelector('#root'), ${scriptJson(options ?? {})});
    </script>
  </body>
</html>
`;

  const plugin: Plugin = {
    async onResponse({ request, response, setResponse, fetchAPI }) {
      if (request.method !== 'GET' || response.status !== 200 || !response.headers.get('content-type')?.startsWith('text/html')) return;
      if (response.headers.has('content-encoding')) return;
      const html = new Uint8Array(await response.arrayBuffer());
      const encoding = negotiateEncoding(request.headers.get('accept-encoding'));
      const body = encoding === 'identity' ? html : new Uint8Array(await compress(html, encoding));
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('content-type', 'text/html; charset=utf-8');
      headers.set('cache-control', 'no-store');
      // /graphql answers JSON to other Accept headers.
      headers.set('vary', 'Accept, Accept-Encoding');
      headers.set('content-length', String(body.byteLength));
      if (encoding !== 'identity') headers.set('content-encoding', encoding);
      setResponse(new fetchAPI.Response(body, { status: 200, headers }));
    },
  };

  return { assets, render, plugin };
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] as string);
}

/**
 * JSON for an inline <script>: `<`, `>` and `&` as \u escapes, so no value (a title, a query) can
 * close the script or open a comment; U+2028/2029 too, for older parsers.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
