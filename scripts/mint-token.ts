/**
 * Prints a development JWT signed with JWT_SECRET (or the development secret when unset).
 *   npm run token -- --sub alice --roles user,admin --expires 3600
 */
import { parseArgs } from 'node:util';
import { mintToken } from '../src/auth/dev-tokens.js';
import { ConfigError, loadConfig, ROLES, type Role } from '../src/config/config.js';

const { values } = parseArgs({
  options: {
    sub: { type: 'string', default: 'alice' },
    roles: { type: 'string', default: 'user' },
    expires: { type: 'string', default: '3600' },
  },
});

try {
  const config = loadConfig(process.env);
  if (config.auth.kind !== 'secret') throw new Error('JWT_JWKS_URL is set: mint tokens with your identity provider instead.');
  const roles = (values.roles ?? '').split(',').map((role) => role.trim()).filter(Boolean);
  const unknown = roles.filter((role) => !(ROLES as readonly string[]).includes(role));
  if (unknown.length > 0) throw new Error(`Unknown roles: ${unknown.join(', ')} (known: ${ROLES.join(', ')})`);
  const expiresInSeconds = Number(values.expires);
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds <= 0) throw new Error('--expires takes whole seconds');
  const token = await mintToken({
    secret: config.auth.secret,
    sub: values.sub ?? 'alice',
    roles: roles as Role[],
    expiresInSeconds,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
  });
  process.stdout.write(`${token}\n`);
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
