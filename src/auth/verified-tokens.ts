import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Principal } from './principal.js';

export type VerifiedPrincipal = Principal & { readonly kind: 'user' };

/**
 * Tokens that verified, remembered so a service sending the same token with every request and a
 * crowd of clients reconnecting at once (an instance died) do not each pay a signature check.
 * Bounded in count (least recently used go first) and, with keys from a JWKS, in age: a key
 * withdrawn from the set stops being trusted within `maxAgeMs`. A remembered token's expiry is
 * still checked on every use (by the verifier) and revocation by the authenticator.
 *
 * Keyed by the token's SHA-256 rather than the token itself: the principal is the object the
 * connection holds anyway, so an entry costs its digest and the cache's own node, not a copy of a
 * token of several hundred bytes.
 */
export class VerifiedTokens {
  private readonly entries: LRUCache<string, VerifiedPrincipal> | undefined;

  constructor(options: { readonly max: number; readonly maxAgeMs?: number; readonly now?: () => number }) {
    this.entries =
      options.max > 0 && options.maxAgeMs !== 0
        ? new LRUCache<string, VerifiedPrincipal>({
            max: options.max,
            // ttlResolution 0: read the clock on every check rather than a value cached by a timer.
            ...(options.maxAgeMs !== undefined ? { ttl: options.maxAgeMs, ttlResolution: 0 } : {}),
            ...(options.now ? { perf: { now: options.now } } : {}),
          })
        : undefined;
  }

  get(token: string): VerifiedPrincipal | undefined {
    return this.entries?.get(digestOf(token));
  }

  remember(token: string, principal: VerifiedPrincipal): void {
    this.entries?.set(digestOf(token), principal);
  }

  forget(token: string): void {
    this.entries?.delete(digestOf(token));
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }
}

/** 128 bits of the token's SHA-256 as a flat 16-character string: the smallest key V8 keeps without a second object. */
function digestOf(token: string): string {
  return createHash('sha256').update(token).digest().toString('latin1', 0, 16);
}
