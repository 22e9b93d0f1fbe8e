import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Refuses a request body larger than `maxBytes` before any of it is read: by its Content-Length,
 * or, for a body sent without one (chunked), as soon as the bytes received pass the limit.
 * Returns true when the request was refused and answered.
 */
export function refuseOversizedBody(request: IncomingMessage, response: ServerResponse, maxBytes: number, onRefused: () => void): boolean {
  const refuse = () => {
    onRefused();
    response.writeHead(413, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
    response.end(
      JSON.stringify({
        errors: [{ message: `Request body larger than ${maxBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE', limit: 'http_body_bytes' } }],
      }),
    );
    request.destroy();
  };
  const declared = request.headers['content-length'];
  if (declared !== undefined) {
    if (Number(declared) > maxBytes) {
      refuse();
      return true;
    }
    return false;
  }
  if (request.headers['transfer-encoding']) {
    let received = 0;
    request.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBytes && !response.headersSent) refuse();
    });
  }
  return false;
}
