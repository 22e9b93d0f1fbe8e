import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';

export interface JwksServer {
  /** Absolute URL of the key set, e.g. http://127.0.0.1:PORT/.well-known/jwks.json */
  readonly url: string;
  /** How many GET requests the key set endpoint has answered so far. */
  requestCount(): number;
}

const JWKS_PATH = '/.well-known/jwks.json';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
}

/**
 * Serves `body` as JSON from a real HTTP server on 127.0.0.1 (a free port), closed
 * automatically when the current test finishes. Must be called inside a test.
 */
export async function startJwksServer(body: unknown, options: { status?: number } = {}): Promise<JwksServer> {
  let requests = 0;
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url !== JWKS_PATH) {
      response.writeHead(404).end();
      return;
    }
    requests += 1;
    response.writeHead(options.status ?? 200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  });
  const port = await listen(server);
  onTestFinished(() => close(server));
  return { url: `http://127.0.0.1:${port}${JWKS_PATH}`, requestCount: () => requests };
}

/** A JWKS URL on a port that was just released, so connecting to it is refused. */
export async function unreachableJwksUrl(): Promise<string> {
  const server = createServer();
  const port = await listen(server);
  await close(server);
  return `http://127.0.0.1:${port}${JWKS_PATH}`;
}
