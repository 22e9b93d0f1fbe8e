import type { Role } from '../config/config.js';

/** Who is on the other end of a connection or request, as proven by their token. */
export type Principal =
  | {
      readonly kind: 'user';
      /** The token's `sub`: a user id, or a service name for service tokens. */
      readonly userId: string;
      readonly roles: ReadonlySet<Role>;
      /** Token expiry in epoch milliseconds, if the token has one. */
      readonly expiresAt: number | undefined;
      /** Token `iat` in epoch milliseconds; a revocation ends sessions of tokens issued before it. */
      readonly issuedAt: number | undefined;
    }
  | { readonly kind: 'anonymous' };

export const ANONYMOUS: Principal = Object.freeze({ kind: 'anonymous' });

export function hasRole(principal: Principal, role: Role): boolean {
  return principal.kind === 'user' && principal.roles.has(role);
}

/** The user id of an authenticated principal, or undefined for anonymous. */
export function userIdOf(principal: Principal): string | undefined {
  return principal.kind === 'user' ? principal.userId : undefined;
}
