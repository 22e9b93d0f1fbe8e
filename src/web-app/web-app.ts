import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import sirv from 'sirv';

export const WEB_APP_PATH = '/app';

/**
 * Serves the built demo web app (client/app/dist, `npm run app:build`) at /app/, as a
 * single-page app. Absent when the app has not been built.
 */
export function createWebAppHandler(directory: string):
  | { handles(request: IncomingMessage): boolean; serve(request: IncomingMessage, response: ServerResponse): void }
  | undefined {
  if (!existsSync(directory)) return undefined;
  const files = sirv(directory, { single: true, etag: true, dev: false });
  return {
    handles: (request) => request.url === WEB_APP_PATH || (request.url ?? '').startsWith(`${WEB_APP_PATH}/`),
    serve(request, response) {
      if (request.url === WEB_APP_PATH) {
        response.writeHead(308, { location: `${WEB_APP_PATH}/` }).end();
        return;
      }
      request.url = (request.url ?? '/').slice(WEB_APP_PATH.length) || '/';
      files(request, response, () => {
        response.writeHead(404).end();
      });
    },
  };
}
