import fresh from 'fresh';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { compress, negotiateEncoding, type CompressionLevels, type Encoding } from './content-encoding.js';

/**
 * A fixed set of assets held in memory, served under content-hashed URLs
 * (`<basePath>/<stem>.<sha256 prefix>.<ext>`): the bytes behind a URL never change, so browsers
 * keep them a year without asking again (`immutable`). Each is compressed with brotli and gzip
 * once, on the first request that asks for it (async zlib), and the result is kept; the client's
 * `Accept-Encoding` (q-values included) picks the variant, `Vary: Accept-Encoding` says so to
 * caches. ETags are per variant, and `If-None-Match` gets a 304. Unknown names are 404, methods
 * other than GET and HEAD 405.
 *
 * For assets that exist only in memory (a package's strings); files on disk are sirv's job
 * (web-app.ts), with their compressed siblings made at build time.
 */

export interface AssetSource {
  /** The file name the URL is made from: `graphiql.js` → `<basePath>/graphiql.<hash>.js`. */
  readonly name: string;
  readonly contentType: string;
  readonly body: string | Uint8Array;
}

export interface InMemoryAssets {
  /** The URL path of an asset, by its `name`; throws for a name it was not given. */
  urlOf(name: string): string;
  /** Whether the request is for a path under `basePath` (answered by `serve`, 404 included). */
  handles(request: IncomingMessage): boolean;
  serve(request: IncomingMessage, response: ServerResponse): void;
}

const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Hex digits of the SHA-256 in a URL: 64 bits, enough to never serve a stale file under a new name. */
const HASH_LENGTH = 16;

interface Asset {
  readonly contentType: string;
  readonly hash: string;
  readonly identity: Buffer;
  /** Filled on first use; a variant no smaller than identity is identity. */
  readonly variants: Map<Exclude<Encoding, 'identity'>, Promise<{ encoding: Encoding; body: Buffer }>>;
}

export function createInMemoryAssets(options: {
  /** Where the assets live, without a trailing slash: `/graphiql/assets`. */
  basePath: string;
  assets: readonly AssetSource[];
  compression?: CompressionLevels;
}): InMemoryAssets {
  const { basePath, compression } = options;
  const byPath = new Map<string, Asset>();
  const urlByName = new Map<string, string>();
  for (const source of options.assets) {
    const identity = typeof source.body === 'string' ? Buffer.from(source.body, 'utf8') : Buffer.from(source.body);
    const hash = createHash('sha256').update(identity).digest('hex').slice(0, HASH_LENGTH);
    const dot = source.name.lastIndexOf('.');
    const file = dot > 0 ? `${source.name.slice(0, dot)}.${hash}${source.name.slice(dot)}` : `${source.name}.${hash}`;
    const path = `${basePath}/${file}`;
    byPath.set(path, { contentType: source.contentType, hash, identity, variants: new Map() });
    urlByName.set(source.name, path);
  }

  function variantOf(asset: Asset, encoding: Encoding): Promise<{ encoding: Encoding; body: Buffer }> {
    if (encoding === 'identity') return Promise.resolve({ encoding, body: asset.identity });
    let variant = asset.variants.get(encoding);
    if (!variant) {
      variant = compress(asset.identity, encoding, compression).then((body) =>
        body.byteLength < asset.identity.byteLength ? { encoding, body } : { encoding: 'identity' as const, body: asset.identity },
      );
      // A failure is not kept: the next request tries again.
      variant.catch(() => asset.variants.delete(encoding));
      asset.variants.set(encoding, variant);
    }
    return variant;
  }

  async function respond(request: IncomingMessage, response: ServerResponse, asset: Asset): Promise<void> {
    const { encoding, body } = await variantOf(asset, negotiateEncoding(request.headers['accept-encoding']));
    const headers: Record<string, string> = {
      'cache-control': IMMUTABLE,
      etag: encoding === 'identity' ? `"${asset.hash}"` : `"${asset.hash}-${encoding}"`,
      vary: 'Accept-Encoding',
    };
    if (fresh(request.headers, { etag: headers['etag'] })) {
      response.writeHead(304, headers).end();
      return;
    }
    response.writeHead(200, {
      ...headers,
      'content-type': asset.contentType,
      'content-length': String(body.byteLength),
      'x-content-type-options': 'nosniff',
      ...(encoding === 'identity' ? {} : { 'content-encoding': encoding }),
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  }

  return {
    urlOf(name) {
      const url = urlByName.get(name);
      if (url === undefined) throw new Error(`no asset named ${name}`);
      return url;
    },
    handles: (request) => (request.url ?? '').startsWith(`${basePath}/`),
    serve(request, response) {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const asset = byPath.get((request.url ?? '').split('?', 1)[0] ?? '');
      if (!asset) {
        response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' }).end('Not found\n');
        return;
      }
      respond(request, response, asset).catch(() => {
        if (!response.headersSent) response.writeHead(500, { 'cache-control': 'no-store' });
        response.end();
      });
    },
  };
}
