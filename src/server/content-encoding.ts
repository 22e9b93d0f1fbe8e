import Negotiator from 'negotiator';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';

/**
 * HTTP response compression shared by the in-memory assets (static-assets.ts), the GraphiQL page
 * (graphiql-page.ts) and the web app's precompressed files (web-app.ts).
 */

/** What we send, best first when the client accepts several equally (RFC 9110 §12.5.3 q-values). */
export const ENCODINGS = ['br', 'gzip', 'identity'] as const;
export type Encoding = (typeof ENCODINGS)[number];

/**
 * negotiator 1.x's documented `encoding(available, { preferred })`, which @types/negotiator (0.6)
 * lacks. Without `preferred`, ties go to the one the client listed first (Chromium sends
 * `gzip, deflate, br, zstd`, so it would get gzip).
 */
interface EncodingNegotiator {
  encoding(available: readonly string[], options: { preferred: readonly string[] }): string | undefined;
}

/**
 * The encoding to send for an `Accept-Encoding` header: q-values decide, then our order (br before
 * gzip). No header means identity; so does a header that refuses everything we have
 * (`identity;q=0` with neither br nor gzip): RFC 9110 lets a server send identity then.
 */
export function negotiateEncoding(acceptEncoding: string | null | undefined): Encoding {
  const headers = acceptEncoding ? { 'accept-encoding': acceptEncoding } : {};
  const chosen = (new Negotiator({ headers }) as unknown as EncodingNegotiator).encoding(ENCODINGS, { preferred: ENCODINGS });
  return (chosen as Encoding | undefined) ?? 'identity';
}

const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);

export interface CompressionLevels {
  /**
   * Brotli quality, 0–11.
   * @default 9 (11 takes about 20 times as long for 10 % less: 9 s instead of 0.5 s for GraphiQL's 5 MB bundle)
   */
  readonly brotliQuality?: number;
  /** @default 9 */
  readonly gzipLevel?: number;
}

/**
 * `body` compressed as `encoding`, on libuv's thread pool (async zlib: the event loop only
 * hands over the chunks).
 */
export async function compress(body: Uint8Array, encoding: Exclude<Encoding, 'identity'>, levels: CompressionLevels = {}): Promise<Buffer> {
  const { brotliQuality = 9, gzipLevel = 9 } = levels;
  if (encoding === 'br') {
    return brotli(body, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: brotliQuality,
        [constants.BROTLI_PARAM_SIZE_HINT]: body.byteLength,
      },
    });
  }
  return gzipped(body, { level: gzipLevel });
}
