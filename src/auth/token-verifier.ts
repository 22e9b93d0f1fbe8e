import { webcrypto } from 'node:crypto';
import { VerifiedTokens } from './verified-tokens.js';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWSHeaderParameters, type JWTPayload } from 'jose';
import { z } from 'zod';
import { ROLES, type AuthConfig, type Role } from '../config/config.js';
import type { Principal } from './principal.js';
import { idSchema } from '../events/contracts.js';

/** Why a token was refused. Logged and counted; clients get a generic message with the reason. */
export type TokenRejection = 'missing' | 'malformed' | 'expired' | 'bad_signature' | 'bad_claims' | 'unavailable' | 'revoked';

export class TokenRejectedError extends Error {
  constructor(
    readonly reason: TokenRejection,
    message: string,
  ) {
    super(message);
    this.name = 'TokenRejectedError';
  }
}

const claimsSchema = z.object({
  // The user id becomes part of topic names, so it follows the same rule as every other id.
  sub: idSchema,
  // Unknown role names are ignored rather than rejected, so an identity provider can add roles
  // for other systems without breaking Tidings.
  roles: z
    .array(z.string())
    .max(32)
    .optional()
    .transform((roles) => roleSetOf((roles ?? []).filter((role): role is Role => (ROLES as readonly string[]).includes(role)))),
});

/**
 * One shared set per combination of known roles (at most 2^ROLES.length, a handful): every
 * connection holds its principal for its whole life, and a Set of its own costs ~180 bytes.
 */
const ROLE_SETS = new Map<string, ReadonlySet<Role>>();
function roleSetOf(roles: readonly Role[]): ReadonlySet<Role> {
  const key = [...new Set(roles)].sort().join(',');
  let set = ROLE_SETS.get(key);
  if (!set) ROLE_SETS.set(key, (set = new Set(roles)));
  return set;
}

export interface TokenVerifier {
  /** Resolves to an authenticated principal or rejects with TokenRejectedError. */
  verify(token: string): Promise<Principal>;
}

/** Verified tokens remembered (secret mode), so a token presented again costs a lookup, not an HMAC. */

/** The hash behind each HMAC JWS algorithm, for importing the secret as a WebCrypto key once. */
const HMAC_HASHES: Readonly<Record<string, string>> = { HS256: 'SHA-256', HS384: 'SHA-384', HS512: 'SHA-512' };

/**
 * Verifies JWTs with jose: HS256 (or another pinned HMAC algorithm) against a shared secret, or
 * asymmetric algorithms against a JWKS URL (fetched and cached by jose). The algorithm list is
 * always pinned, so `alg: none` and algorithm-confusion tokens are refused.
 *
 * With a shared secret the key is imported into WebCrypto once per algorithm (jose would import
 * a raw secret on every call). Tokens that verified are remembered (VerifiedTokens) until they
 * expire: services send the same token with every request and users reconnect with theirs.
 * Claims are fixed by the signature, so a remembered token only needs its expiry checked again;
 * revocation is checked by the authenticator on every use. With a JWKS a token is remembered for
 * at most JWKS_VERIFIED_TOKEN_MAX_AGE_SECONDS, so a key withdrawn from the set stops being trusted
 * within that bound.
 */
export function createTokenVerifier(config: AuthConfig, deps: { verified?: VerifiedTokens } = {}): TokenVerifier {
  const clockToleranceMs = config.clockToleranceSeconds * 1000;
  const options = {
    algorithms: [...config.algorithms],
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: config.clockToleranceSeconds,
    requiredClaims: ['sub', 'exp'],
  };
  const verifyJwt =
    config.kind === 'secret'
      ? secretVerifier(config.secret, options)
      : (() => {
          const keySet = createRemoteJWKSet(config.jwksUrl);
          return async (token: string) => (await jwtVerify(token, keySet, options)).payload;
        })();
  const verified =
    deps.verified ?? new VerifiedTokens({ max: config.verifiedTokenCacheSize, maxAgeMs: config.kind === 'jwks' ? config.jwksVerifiedTokenMaxAgeSeconds * 1000 : undefined });

  return {
    async verify(token) {
      if (token.length > 8_192) throw new TokenRejectedError('malformed', 'Token is too long');
      const remembered = verified.get(token);
      if (remembered) {
        // The same test jose applies to `exp`; every other claim was checked when it verified.
        if (remembered.expiresAt !== undefined && Date.now() - clockToleranceMs >= remembered.expiresAt) {
          verified.forget(token);
          throw new TokenRejectedError('expired', 'Token has expired');
        }
        return remembered;
      }
      let payload: JWTPayload;
      try {
        payload = await verifyJwt(token);
      } catch (error) {
        throw toRejection(error);
      }
      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) {
        throw new TokenRejectedError('bad_claims', `Token claims are invalid: ${claims.error.issues[0]?.message ?? 'unknown'}`);
      }
      const principal: Principal & { kind: 'user' } = {
        kind: 'user',
        userId: claims.data.sub,
        roles: claims.data.roles,
        expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
        issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : undefined,
      };
      verified.remember(token, principal);
      return principal;
    },
  };
}

/** jwtVerify against a shared secret imported as one WebCrypto key per pinned HMAC algorithm. */
function secretVerifier(secret: Uint8Array, options: Parameters<typeof jwtVerify>[2]) {
  const keys = new Map<string, Promise<webcrypto.CryptoKey>>();
  const keyFor = (header: JWSHeaderParameters): Promise<webcrypto.CryptoKey> | Uint8Array => {
    const alg = header.alg ?? '';
    const hash = HMAC_HASHES[alg];
    // jose has already refused algorithms outside the pinned list; anything else gets the raw
    // secret and jose's own refusal.
    if (!hash) return secret;
    let key = keys.get(alg);
    if (!key) {
      key = webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash }, false, ['verify']);
      keys.set(alg, key);
    }
    return key;
  };
  return async (token: string) => (await jwtVerify(token, keyFor, options)).payload;
}

function toRejection(error: unknown): TokenRejectedError {
  if (error instanceof joseErrors.JWTExpired) return new TokenRejectedError('expired', 'Token has expired');
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return new TokenRejectedError('bad_claims', `Token claim "${error.claim}" is invalid`);
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JWKSNoMatchingKey) {
    return new TokenRejectedError('bad_signature', 'Token signature is invalid');
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return new TokenRejectedError('bad_signature', 'Token algorithm is not allowed');
  }
  // The key server timed out, answered with something that is not a key set, answered non-200
  // (jose's generic JOSEError) or could not be reached at all (fetch's TypeError): not the
  // client's fault, and retrying later may work.
  if (
    error instanceof joseErrors.JWKSTimeout ||
    error instanceof joseErrors.JWKSInvalid ||
    error instanceof TypeError ||
    (error instanceof joseErrors.JOSEError && error.code === 'ERR_JOSE_GENERIC')
  ) {
    return new TokenRejectedError('unavailable', 'Signing keys are unavailable; try again');
  }
  return new TokenRejectedError('malformed', 'Token is malformed');
}
