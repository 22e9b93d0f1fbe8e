import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * A Node request that carries its body already read, as a body parser leaves it. This is
 * `NodeRequest.body` of `@whatwg-node/server` (the adapter under Yoga's Node handler, see its
 * `typings/utils.d.ts`): when a request's `body` is set, it builds the WHATWG Request from it and
 * does not read the stream, which a body parser has consumed (`normalizeNodeRequest`).
 */
type RequestWithReadBody = IncomingMessage & { body?: Uint8Array };

/**
 * Enforces HTTP_MAX_BODY_BYTES on a request, then calls `handle` (Yoga, the web app) once the
 * request may be handed on. Guarantees:
 *
 * - A body with a Content-Length larger than `maxBytes` is refused up front, before any of it is
 *   read. A smaller Content-Length is handed on at once, its stream unread: Node's HTTP parser
 *   holds the body to the declared length, so it cannot grow past it.
 * - A body without one (`Transfer-Encoding: chunked`) is read here, and refused as soon as the
 *   bytes received pass `maxBytes`; at most `maxBytes` of it are kept. Only once it has arrived
 *   whole is the request handed on, with the bytes set as its `body` (the documented
 *   `NodeRequest.body` of `@whatwg-node/server`, the same field a body parser such as Express's
 *   fills), so every byte reaches Yoga. (Counting with a `data` listener alongside Yoga's own
 *   reading loses data: the listener starts the stream flowing, and whatever arrives before Yoga
 *   reads — its plugins run first, some asynchronously — is gone.) An empty chunked body leaves
 *   `body` empty, which whatwg-node does not take as read: it reads the stream instead, which has
 *   ended, so Yoga sees an empty body just as for `Content-Length: 0`.
 * - A refusal calls `onRefused`, answers 413 `PAYLOAD_TOO_LARGE` (`limit: http_body_bytes`) and
 *   destroys the request; `handle` is then never called. Nor is it when the client goes away
 *   before its chunked body has ended: there is no one left to answer.
 * - A request without a body (neither header) is handed on at once.
 */
export function refuseOversizedBody(
  request: IncomingMessage,
  response: ServerResponse,
  maxBytes: number,
  onRefused: () => void,
  handle: () => void,
): void {
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
    if (Number(declared) > maxBytes) refuse();
    else handle();
    return;
  }
  if (!request.headers['transfer-encoding']) {
    handle();
    return;
  }

  const chunks: Buffer[] = [];
  let received = 0;
  const stopReading = () => {
    request.off('data', onData);
    request.off('end', onEnd);
    request.off('error', onGone);
    request.off('close', onGone);
    // A late error on a request nobody reads any more must not become an uncaught one.
    request.on('error', ignore);
    chunks.length = 0;
  };
  function onData(chunk: Buffer) {
    received += chunk.length;
    if (received > maxBytes) {
      stopReading();
      refuse();
      return;
    }
    chunks.push(chunk);
  }
  function onEnd() {
    const body = Buffer.concat(chunks, received);
    stopReading();
    (request as RequestWithReadBody).body = body;
    handle();
  }
  function onGone() {
    // Aborted mid-body ('error' is ECONNRESET "aborted", then 'close'): nothing to hand on.
    stopReading();
  }
  request.on('data', onData);
  request.once('end', onEnd);
  request.once('error', onGone);
  request.once('close', onGone);
}

function ignore(): void {}
