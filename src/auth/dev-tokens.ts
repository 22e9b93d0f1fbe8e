import { SignJWT } from 'jose';
import type { Role } from '../config/config.js';

/**
 * Signs an HS256 token. Used by `npm run token` (development) and by tests; production tokens
 * come from your identity provider.
 */
export async function mintToken(options: {
  secret: Uint8Array;
  sub: string;
  roles: readonly Role[];
  expiresInSeconds?: number;
  issuer?: string;
  audience?: string;
}): Promise<string> {
  let jwt = new SignJWT({ roles: [...options.roles] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 3600));
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(options.secret);
}
