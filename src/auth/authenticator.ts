import type { AuthConfig } from '../config/config.js';
import { ANONYMOUS, type Principal } from './principal.js';
import { TokenRejectedError, type TokenVerifier } from './token-verifier.js';

export interface Authenticator {
  /**
   * Turns offered credentials into a principal. `undefined` means none were offered: that is
   * anonymous when the deployment allows it and a rejection otherwise. Rejects with
   * TokenRejectedError.
   */
  authenticate(bearerToken: string | undefined): Promise<Principal>;
}

export function createAuthenticator(config: AuthConfig, verifier: TokenVerifier): Authenticator {
  return {
    async authenticate(bearerToken) {
      if (bearerToken === undefined) {
        if (config.allowAnonymous) return ANONYMOUS;
        throw new TokenRejectedError('missing', 'A bearer token is required');
      }
      if (bearerToken === '') throw new TokenRejectedError('malformed', 'Credentials must be "Bearer <token>"');
      return verifier.verify(bearerToken);
    },
  };
}
