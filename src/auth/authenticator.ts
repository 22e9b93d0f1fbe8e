import type { AuthConfig } from '../config/config.js';
import { ANONYMOUS, type Principal } from './principal.js';
import { TokenRejectedError, type TokenVerifier } from './token-verifier.js';

/**
 * What the authenticator asks after a token verified: whether its user's sessions were revoked
 * since it was issued (implemented by src/sessions, which depends on auth, not the other way).
 */
export interface RevocationCheck {
  /** Rejects with TokenRejectedError('revoked') when the token predates a revocation of its user. */
  assertNotRevoked(principal: Extract<Principal, { kind: 'user' }>): Promise<void>;
}

export interface Authenticator {
  /**
   * Turns offered credentials into a principal. `undefined` means none were offered: that is
   * anonymous when the deployment allows it and a rejection otherwise. Rejects with
   * TokenRejectedError, also (reason `revoked`) for a token issued before its user's sessions
   * were revoked.
   */
  authenticate(bearerToken: string | undefined): Promise<Principal>;
}

export function createAuthenticator(config: AuthConfig, verifier: TokenVerifier, revocations: RevocationCheck): Authenticator {
  return {
    async authenticate(bearerToken) {
      if (bearerToken === undefined) {
        if (config.allowAnonymous) return ANONYMOUS;
        throw new TokenRejectedError('missing', 'A bearer token is required');
      }
      if (bearerToken === '') throw new TokenRejectedError('malformed', 'Credentials must be "Bearer <token>"');
      const principal = await verifier.verify(bearerToken);
      if (principal.kind === 'user') await revocations.assertNotRevoked(principal);
      return principal;
    },
  };
}
