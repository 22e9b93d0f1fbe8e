import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

/**
 * The operator listener: Prometheus `/metrics` and the `/stats` snapshot, on their own port so
 * they are never exposed with client traffic (loopback by default), optionally behind a bearer
 * token. Liveness and readiness stay on the main port, where load balancers look.
 */
export function createOpsServer(deps: { registry: Registry; stats: () => unknown; token: string | undefined }): Server {
  const expected = deps.token === undefined ? undefined : Buffer.from(`Bearer ${deps.token}`);
  const authorized = (request: IncomingMessage) => {
    if (!expected) return true;
    const given = Buffer.from(request.headers.authorization ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  const send = (response: ServerResponse, status: number, contentType: string, body: string) => {
    response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
    response.end(body);
  };
  return createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://ops').pathname;
    if (request.method !== 'GET' || (path !== '/metrics' && path !== '/stats')) {
      send(response, 404, 'text/plain; charset=utf-8', 'Not found: GET /metrics or /stats\n');
      return;
    }
    if (!authorized(request)) {
      response.setHeader('www-authenticate', 'Bearer');
      send(response, 401, 'text/plain; charset=utf-8', 'Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n');
      return;
    }
    if (path === '/stats') {
      send(response, 200, 'application/json; charset=utf-8', `${JSON.stringify(deps.stats(), null, 2)}\n`);
      return;
    }
    deps.registry.metrics().then(
      (body) => send(response, 200, deps.registry.contentType, body),
      (error: unknown) => send(response, 500, 'text/plain; charset=utf-8', `metrics failed: ${error instanceof Error ? error.message : String(error)}\n`),
    );
  });
}
