import { request, type IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';

export interface RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The bytes as sent: still compressed when `content-encoding` says so. */
  readonly body: Buffer;
}

/**
 * One HTTP request with exactly the headers given (fetch adds its own Accept-Encoding and
 * decompresses), answered with the bytes on the wire.
 */
export function rawRequest(url: string | URL, headers: Record<string, string> = {}, method = 'GET'): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** The body decoded as its `content-encoding` says (br, gzip or none). */
export function decoded(answer: RawAnswer): Buffer {
  switch (answer.headers['content-encoding']) {
    case undefined:
      return answer.body;
    case 'br':
      return brotliDecompressSync(answer.body);
    case 'gzip':
      return gunzipSync(answer.body);
    default:
      throw new Error(`unexpected content-encoding ${answer.headers['content-encoding']}`);
  }
}
