import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
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
    .transform((roles) => new Set((roles ?? []).filter((role): role is Role => (ROLES as readonly string[]).includes(role)))),
});

export interface TokenVerifier {
  /** Resolves to an authenticated principal or rejects with TokenRejectedError. */
  verify(token: string): Promise<Principal>;
}

/**
 * Verifies JWTs with jose: HS256 (or another pinned HMAC algorithm) against a shared secret, or
 * asymmetric algorithms against a JWKS URL (fetched and cached by jose). The algorithm list is
 * always pinned, so `alg: none` and algorithm-confusion tokens are refused.
 */
export function createTokenVerifier(config: AuthConfig): TokenVerifier {
  const key = config.kind === 'secret' ? config.secret : createRemoteJWKSet(config.jwksUrl);
  const options = {
    algorithms: [...config.algorithms],
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: config.clockToleranceSeconds,
    requiredClaims: ['sub', 'exp'],
  };

  return {
    async verify(token) {
      if (token.length > 8_192) throw new TokenRejectedError('malformed', 'Token is too long');
      let payload: JWTPayload;
      try {
        // jose's overloads differ only in the key type; both are callable with these options.
        payload =
          typeof key === 'function'
            ? (await jwtVerify(token, key, options)).payload
            : (await jwtVerify(token, key, options)).payload;
      } catch (error) {
        throw toRejection(error);
      }
      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) {
        throw new TokenRejectedError('bad_claims', `Token claims are invalid: ${claims.error.issues[0]?.message ?? 'unknown'}`);
      }
      return {
        kind: 'user',
        userId: claims.data.sub,
        roles: claims.data.roles,
        expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
        issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : undefined,
      };
    },
  };
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
