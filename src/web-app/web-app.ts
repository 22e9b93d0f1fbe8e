import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import sirv from 'sirv';
import { negotiateEncoding } from '../server/content-encoding.js';

export const WEB_APP_PATH = '/app';

/** Vite's build puts content-hashed files (`index-<hash>.js`) in assets/: their bytes never change. */
const HASHED_ASSETS = '/assets/';

/**
 * Serves the built demo web app (client/app/dist, `npm run app:build`) at /app/, as a
 * single-page app. Absent when the app has not been built. The build writes brotli and gzip
 * copies beside each text file (client/app/vite.config.ts), which sirv sends to clients that
 * accept them; hashed files are cached for a year, the rest (index.html) revalidated each time.
 */
export function createWebAppHandler(directory: string):
  | { handles(request: IncomingMessage): boolean; serve(request: IncomingMessage, response: ServerResponse): void }
  | undefined {
  if (!existsSync(directory)) return undefined;
  const files = sirv(directory, {
    single: true,
    etag: true,
    dev: false,
    brotli: true,
    gzip: true,
    setHeaders(response, pathname) {
      response.setHeader('cache-control', pathname.startsWith(HASHED_ASSETS) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  return {
    handles: (request) => request.url === WEB_APP_PATH || (request.url ?? '').startsWith(`${WEB_APP_PATH}/`),
    serve(request, response) {
      if (request.url === WEB_APP_PATH) {
        response.writeHead(308, { location: `${WEB_APP_PATH}/` }).end();
        return;
      }
      request.url = (request.url ?? '/').slice(WEB_APP_PATH.length) || '/';
      // sirv picks .br/.gz by substring, ignoring q-values (`br;q=0` would get brotli): it is
      // given the one encoding negotiated instead.
      request.headers['accept-encoding'] = negotiateEncoding(request.headers['accept-encoding']);
      files(request, response, () => {
        response.writeHead(404).end();
      });
    },
  };
}
