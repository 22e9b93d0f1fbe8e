import { createHmac } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAuthenticator } from '../src/auth/authenticator.js';
import { createMemorySessionRevocations } from '../src/sessions/session-revocations.js';
import { bearerFromConnectionParams, bearerFromHeader } from '../src/auth/credentials.js';
import { mintToken } from '../src/auth/dev-tokens.js';
import { ANONYMOUS } from '../src/auth/principal.js';
import { createTokenVerifier, TokenRejectedError, type TokenRejection } from '../src/auth/token-verifier.js';
import { loadConfig } from '../src/config/config.js';
import { TEST_JWT_SECRET, testConfig, tokenFor } from './support/gateway.js';
import { startJwksServer, unreachableJwksUrl } from './support/jwks-server.js';

const SECRET = new TextEncoder().encode(TEST_JWT_SECRET);
const nowSeconds = () => Math.floor(Date.now() / 1000);

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

interface SignOptions {
  alg?: string;
  key?: Uint8Array | CryptoKey;
  kid?: string;
  /** null leaves the claim out. */
  sub?: string | null;
  /** Seconds since the epoch; null leaves the claim out. */
  exp?: number | null;
  iss?: string;
  aud?: string;
}

/** Signs a JWT with jose, HS256 with the test secret unless told otherwise. */
function sign(claims: JWTPayload = {}, options: SignOptions = {}): Promise<string> {
  const alg = options.alg ?? 'HS256';
  const jwt = new SignJWT({ ...claims }).setProtectedHeader({
    alg,
    typ: 'JWT',
    ...(options.kid !== undefined ? { kid: options.kid } : {}),
  });
  jwt.setIssuedAt();
  if (options.sub !== null) jwt.setSubject(options.sub ?? 'alice');
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? nowSeconds() + 600);
  if (options.iss !== undefined) jwt.setIssuer(options.iss);
  if (options.aud !== undefined) jwt.setAudience(options.aud);
  return jwt.sign(options.key ?? SECRET);
}

/** Awaits a promise that must reject with TokenRejectedError and returns the error. */
async function rejectionOf(promise: Promise<unknown>): Promise<TokenRejectedError> {
  const outcome = await promise.then(
    (value) => ({ settled: 'resolved' as const, value }),
    (error: unknown) => ({ settled: 'rejected' as const, error }),
  );
  if (outcome.settled === 'resolved') {
    throw new Error(`expected a TokenRejectedError, but it resolved to ${JSON.stringify(outcome.value)}`);
  }
  expect(outcome.error).toBeInstanceOf(TokenRejectedError);
  const error = outcome.error as TokenRejectedError;
  expect(error.name).toBe('TokenRejectedError');
  return error;
}

async function expectRejected(promise: Promise<unknown>, reason: TokenRejection): Promise<TokenRejectedError> {
  const error = await rejectionOf(promise);
  expect(error.reason).toBe(reason);
  return error;
}

function hsVerifier(env: Record<string, string> = {}) {
  return createTokenVerifier(testConfig(env).auth);
}

describe('token verifier (HS256 shared secret)', () => {
  it('turns a valid token into a user principal', async () => {
    const exp = nowSeconds() + 600;
    const principal = await hsVerifier().verify(await sign({ roles: ['user', 'host'] }, { sub: 'alice', exp }));
    expect(principal).toEqual({ kind: 'user', userId: 'alice', roles: new Set(['user', 'host']), expiresAt: exp * 1000, issuedAt: expect.any(Number) });
  });

  it('accepts tokens minted by the dev-token helper and tokenFor', async () => {
    const verifier = hsVerifier();
    const fromTokenFor = await verifier.verify(await tokenFor('booking-service', ['service']));
    expect(fromTokenFor.kind === 'user' && fromTokenFor.userId).toBe('booking-service');
    expect(fromTokenFor.kind === 'user' && [...fromTokenFor.roles]).toEqual(['service']);

    const minted = await mintToken({ secret: SECRET, sub: 'ops@example.com', roles: ['admin'], expiresInSeconds: 60 });
    const principal = await verifier.verify(minted);
    if (principal.kind !== 'user') throw new Error('expected a user principal');
    expect(principal.userId).toBe('ops@example.com');
    expect([...principal.roles]).toEqual(['admin']);
    expect(principal.expiresAt).toBeGreaterThan(Date.now() + 50_000);
    expect(principal.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it('drops unknown roles and treats missing roles as none', async () => {
    const verifier = hsVerifier();
    const mixed = await verifier.verify(await sign({ roles: ['user', 'superuser', 'admin', 'ADMIN'] }));
    expect(mixed.kind === 'user' && mixed.roles).toEqual(new Set(['user', 'admin']));
    const none = await verifier.verify(await sign({}));
    expect(none.kind === 'user' && none.roles).toEqual(new Set());
  });

  it('rejects a roles claim that is not a list of at most 32 strings', async () => {
    const verifier = hsVerifier();
    await expectRejected(verifier.verify(await sign({ roles: 'admin' })), 'bad_claims');
    await expectRejected(verifier.verify(await sign({ roles: [1, 2] })), 'bad_claims');
    await expectRejected(verifier.verify(await sign({ roles: Array.from({ length: 33 }, () => 'user') })), 'bad_claims');
  });

  it('requires sub', async () => {
    const error = await expectRejected(hsVerifier().verify(await sign({}, { sub: null })), 'bad_claims');
    expect(error.message).toContain('"sub"');
  });

  it('requires exp', async () => {
    const error = await expectRejected(hsVerifier().verify(await sign({}, { exp: null })), 'bad_claims');
    expect(error.message).toContain('"exp"');
  });

  it('rejects an expired token beyond the clock tolerance', async () => {
    const verifier = hsVerifier();
    await expectRejected(verifier.verify(await sign({}, { exp: nowSeconds() - 60 })), 'expired');
    await expectRejected(verifier.verify(await tokenFor('alice', ['user'], { expiresInSeconds: -30 })), 'expired');
  });

  it('honours JWT_CLOCK_TOLERANCE_SECONDS for a token that just expired', async () => {
    const token = await sign({}, { exp: nowSeconds() - 2 });
    await expect(hsVerifier({ JWT_CLOCK_TOLERANCE_SECONDS: '5' }).verify(token)).resolves.toMatchObject({ kind: 'user', userId: 'alice' });
    await expectRejected(hsVerifier({ JWT_CLOCK_TOLERANCE_SECONDS: '0' }).verify(token), 'expired');
  });

  it('refuses a token it verified before once that token expires', async () => {
    // The verifier remembers verified tokens; the expiry must still be applied on every use.
    const verifier = hsVerifier({ JWT_CLOCK_TOLERANCE_SECONDS: '0' });
    const exp = nowSeconds() + 1;
    const token = await sign({}, { exp });
    await expect(verifier.verify(token)).resolves.toMatchObject({ userId: 'alice' });
    await expect(verifier.verify(token)).resolves.toMatchObject({ userId: 'alice' });
    await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 50));
    await expectRejected(verifier.verify(token), 'expired');
    await expectRejected(verifier.verify(token), 'expired');
  });

  it('does not accept a forged signature on the claims of a token it verified before', async () => {
    const verifier = hsVerifier();
    const token = await sign({ roles: ['admin'] });
    await verifier.verify(token);
    const [header, payload] = token.split('.');
    const forged = `${header}.${payload}.${createHmac('sha256', 'not-the-secret').update(`${header}.${payload}`).digest('base64url')}`;
    await expectRejected(verifier.verify(forged), 'bad_signature');
  });

  it('rejects a token signed with another secret', async () => {
    const other = new TextEncoder().encode('a-different-secret-that-is-long-enough-0123');
    await expectRejected(hsVerifier().verify(await sign({}, { key: other })), 'bad_signature');
    await expectRejected(
      hsVerifier().verify(await tokenFor('alice', ['admin'], { secret: 'another-secret-0123456789-abcdefghijklmnop' })),
      'bad_signature',
    );
  });

  it('rejects a tampered payload', async () => {
    const [header, , signature] = (await sign({ roles: ['user'] })).split('.');
    const forged = `${header}.${base64url({ sub: 'alice', roles: ['admin'], exp: nowSeconds() + 600 })}.${signature}`;
    await expectRejected(hsVerifier().verify(forged), 'bad_signature');
  });

  it('rejects an unsigned alg:none token', async () => {
    const payload = base64url({ sub: 'alice', roles: ['admin'], exp: nowSeconds() + 600 });
    const verifier = hsVerifier();
    await expectRejected(verifier.verify(`${base64url({ alg: 'none', typ: 'JWT' })}.${payload}.`), 'bad_signature');
    await expectRejected(verifier.verify(`${base64url({ alg: 'none' })}.${payload}.`), 'bad_signature');
  });

  it('rejects an algorithm that is not pinned, even with the right secret', async () => {
    const hs384 = await sign({}, { alg: 'HS384' });
    await expectRejected(hsVerifier().verify(hs384), 'bad_signature');
    // The same token is fine once HS384 is configured, so the rejection above is the pin.
    await expect(hsVerifier({ JWT_ALGORITHMS: 'HS256,HS384' }).verify(hs384)).resolves.toMatchObject({ userId: 'alice' });
  });

  it('checks issuer and audience when configured', async () => {
    const verifier = hsVerifier({ JWT_ISSUER: 'https://idp.example.com', JWT_AUDIENCE: 'tidings' });
    const good = await sign({}, { iss: 'https://idp.example.com', aud: 'tidings' });
    await expect(verifier.verify(good)).resolves.toMatchObject({ kind: 'user', userId: 'alice' });

    const wrongIssuer = await expectRejected(verifier.verify(await sign({}, { iss: 'https://evil.example.com', aud: 'tidings' })), 'bad_claims');
    expect(wrongIssuer.message).toContain('"iss"');
    const wrongAudience = await expectRejected(verifier.verify(await sign({}, { iss: 'https://idp.example.com', aud: 'other' })), 'bad_claims');
    expect(wrongAudience.message).toContain('"aud"');
    await expectRejected(verifier.verify(await sign({}, { aud: 'tidings' })), 'bad_claims');
    await expectRejected(verifier.verify(await sign({}, { iss: 'https://idp.example.com' })), 'bad_claims');
  });

  it('ignores iss and aud when neither is configured', async () => {
    await expect(hsVerifier().verify(await sign({}, { iss: 'anyone', aud: 'anything' }))).resolves.toMatchObject({ userId: 'alice' });
  });

  it.each(['alice:admin', 'alice smith', '', 'x'.repeat(129), 'ålice'])('rejects sub %j', async (sub) => {
    await expectRejected(hsVerifier().verify(await sign({}, { sub })), 'bad_claims');
  });

  it('accepts a sub of letters, digits and _ . @ - up to 128 characters', async () => {
    const verifier = hsVerifier();
    for (const sub of ['svc_booking.v2@example-host', 'x'.repeat(128)]) {
      await expect(verifier.verify(await sign({}, { sub }))).resolves.toMatchObject({ userId: sub });
    }
  });

  it('rejects a sub that is not a string', async () => {
    await expectRejected(hsVerifier().verify(await sign({ sub: 42 } as unknown as JWTPayload, { sub: null })), 'bad_claims');
  });

  it('rejects tokens longer than 8192 characters as malformed and accepts exactly 8192', async () => {
    // Find pad lengths giving validly signed tokens of exactly 8192 and 8193 characters.
    const byLength = new Map<number, string>();
    for (let kidLength = 1; kidLength <= 4 && !(byLength.has(8192) && byLength.has(8193)); kidLength++) {
      for (let pad = 6_000; pad <= 6_150; pad++) {
        const token = await sign({ pad: 'p'.repeat(pad) }, { kid: 'k'.repeat(kidLength), exp: 2_000_000_000 });
        if (!byLength.has(token.length)) byLength.set(token.length, token);
      }
    }
    const exactly = byLength.get(8192);
    const tooLong = byLength.get(8193);
    expect(exactly).toHaveLength(8192);
    expect(tooLong).toHaveLength(8193);
    const verifier = hsVerifier();
    await expect(verifier.verify(exactly as string)).resolves.toMatchObject({ userId: 'alice' });
    const error = await expectRejected(verifier.verify(tooLong as string), 'malformed');
    expect(error.message).toBe('Token is too long');
  });

  it.each(['not-a-jwt', 'a.b.c', 'a.b', '....'])('rejects garbage %j as malformed', async (token) => {
    await expectRejected(hsVerifier().verify(token), 'malformed');
  });

  it('rejects a correctly signed token whose payload is not a JSON object as malformed', async () => {
    const verifier = hsVerifier();
    for (const payload of ['not json', '"a string"', '[1,2]']) {
      const signingInput = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${Buffer.from(payload).toString('base64url')}`;
      const signature = createHmac('sha256', SECRET).update(signingInput).digest('base64url');
      await expectRejected(verifier.verify(`${signingInput}.${signature}`), 'malformed');
    }
  });
});

describe('authenticator', () => {
  function authenticator(env: Record<string, string> = {}) {
    const config = testConfig(env);
    return createAuthenticator(config.auth, createTokenVerifier(config.auth), createMemorySessionRevocations({ ttlMs: 60_000 }));
  }

  it('requires a token unless anonymous access is allowed', async () => {
    const error = await expectRejected(authenticator().authenticate(undefined), 'missing');
    expect(error.message).toBe('A bearer token is required');
  });

  it('returns ANONYMOUS for no token when ALLOW_ANONYMOUS=true', async () => {
    const principal = await authenticator({ ALLOW_ANONYMOUS: 'true' }).authenticate(undefined);
    expect(principal).toBe(ANONYMOUS);
    expect(principal).toEqual({ kind: 'anonymous' });
  });

  it('refuses offered-but-unusable credentials even when anonymous is allowed', async () => {
    await expectRejected(authenticator().authenticate(''), 'malformed');
    await expectRejected(authenticator({ ALLOW_ANONYMOUS: 'true' }).authenticate(''), 'malformed');
    await expectRejected(authenticator({ ALLOW_ANONYMOUS: 'true' }).authenticate(await sign({}, { exp: nowSeconds() - 60 })), 'expired');
  });

  it('verifies an offered token', async () => {
    for (const env of [{}, { ALLOW_ANONYMOUS: 'true' }] as Record<string, string>[]) {
      const principal = await authenticator(env).authenticate(await tokenFor('bob', ['host']));
      expect(principal).toMatchObject({ kind: 'user', userId: 'bob', roles: new Set(['host']) });
    }
  });
});

describe('credentials', () => {
  it.each([
    ['Bearer x', 'x'],
    ['bearer  x', 'x'],
    ['BEARER x  ', 'x'],
    ['Bearer a.b.c', 'a.b.c'],
    ['Basic x', ''],
    ['Bearer', ''],
    ['Bearer x y', ''],
    ['x', ''],
  ] as const)('bearerFromHeader(%j) is %j', (header, expected) => {
    expect(bearerFromHeader(header)).toBe(expected);
  });

  it.each([null, undefined, '', '   '])('bearerFromHeader(%j) is undefined (nothing offered)', (header) => {
    expect(bearerFromHeader(header)).toBeUndefined();
  });

  it.each([
    [{ authorization: 'Bearer x' }, 'x'],
    [{ Authorization: 'Bearer x' }, 'x'],
    [{ authorization: 'Basic x' }, ''],
    ['str', ''],
    [[], ''],
    [['Bearer x'], ''],
    [{ authorization: 5 }, ''],
    [42, ''],
  ] as const)('bearerFromConnectionParams(%j) is %j', (params, expected) => {
    expect(bearerFromConnectionParams(params)).toBe(expected);
  });

  it.each([undefined, null, {}, { token: 'Bearer x' }, { authorization: '' }, { authorization: null }])(
    'bearerFromConnectionParams(%j) is undefined (nothing offered)',
    (params) => {
      expect(bearerFromConnectionParams(params)).toBeUndefined();
    },
  );
});

describe('token verifier (JWKS over real HTTP)', () => {
  async function keyPair(alg: 'RS256' | 'ES256', kid: string) {
    const { publicKey, privateKey } = await generateKeyPair(alg);
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    return { publicKey, privateKey, jwk, kid };
  }

  function jwksVerifier(url: string, extra: Record<string, string> = {}) {
    const config = loadConfig({ NODE_ENV: 'test', JWT_JWKS_URL: url, LOG_LEVEL: 'silent', ...extra });
    expect(config.auth.kind).toBe('jwks');
    expect(config.auth.algorithms).toEqual(extra.JWT_ALGORITHMS ? expect.any(Array) : ['RS256', 'ES256']);
    return createTokenVerifier(config.auth);
  }

  it('accepts an RS256 token signed by a key in the set, fetching the set once', async () => {
    const rsa = await keyPair('RS256', 'rsa-1');
    const server = await startJwksServer({ keys: [rsa.jwk] });
    const verifier = jwksVerifier(server.url);
    expect(server.requestCount()).toBe(0);

    const exp = nowSeconds() + 600;
    const principal = await verifier.verify(await sign({ roles: ['service', 'nope'] }, { alg: 'RS256', kid: 'rsa-1', key: rsa.privateKey, sub: 'booking-service', exp }));
    expect(principal).toEqual({ kind: 'user', userId: 'booking-service', roles: new Set(['service']), expiresAt: exp * 1000, issuedAt: expect.any(Number) });
    expect(server.requestCount()).toBe(1);

    await expect(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-1', key: rsa.privateKey }))).resolves.toMatchObject({ userId: 'alice' });
    expect(server.requestCount()).toBe(1);
  });

  it('applies claim checks to JWKS tokens too', async () => {
    const rsa = await keyPair('RS256', 'rsa-1');
    const server = await startJwksServer({ keys: [rsa.jwk] });
    const verifier = jwksVerifier(server.url, { JWT_ISSUER: 'https://idp.example.com' });
    await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-1', key: rsa.privateKey })), 'bad_claims');
    await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-1', key: rsa.privateKey, iss: 'https://idp.example.com', exp: nowSeconds() - 60 })), 'expired');
    await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-1', key: rsa.privateKey, iss: 'https://idp.example.com', sub: 'a:b' })), 'bad_claims');
  });

  it('rejects an RS256 token signed by a key that is not in the set', async () => {
    const published = await keyPair('RS256', 'rsa-1');
    const impostor = await keyPair('RS256', 'rsa-1');
    const server = await startJwksServer({ keys: [published.jwk] });
    const verifier = jwksVerifier(server.url);
    // Same kid, wrong key: the signature check fails.
    await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-1', key: impostor.privateKey })), 'bad_signature');
    // Unknown kid: no key in the set matches.
    await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-2', key: impostor.privateKey })), 'bad_signature');
    // No kid at all: the only RS256 key is tried and does not verify.
    await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', key: impostor.privateKey })), 'bad_signature');
  });

  it('refuses algorithm confusion: HS256 tokens keyed with the public key', async () => {
    const rsa = await keyPair('RS256', 'rsa-1');
    const server = await startJwksServer({ keys: [rsa.jwk] });
    const verifier = jwksVerifier(server.url);
    const pem = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
    const jwkBytes = new TextEncoder().encode(JSON.stringify(rsa.jwk));
    for (const key of [pem, jwkBytes, SECRET]) {
      const error = await expectRejected(verifier.verify(await sign({ roles: ['admin'] }, { alg: 'HS256', kid: 'rsa-1', key })), 'bad_signature');
      expect(error.message).toBe('Token algorithm is not allowed');
    }
    const none = `${base64url({ alg: 'none', kid: 'rsa-1' })}.${base64url({ sub: 'alice', exp: nowSeconds() + 600 })}.`;
    await expectRejected(verifier.verify(none), 'bad_signature');
  });

  it('accepts ES256 with the default algorithms and keeps key types apart', async () => {
    const ec = await keyPair('ES256', 'ec-1');
    const rsa = await keyPair('RS256', 'rsa-1');
    const server = await startJwksServer({ keys: [ec.jwk] });
    const verifier = jwksVerifier(server.url);
    await expect(verifier.verify(await sign({ roles: ['host'] }, { alg: 'ES256', kid: 'ec-1', key: ec.privateKey, sub: 'carol' }))).resolves.toMatchObject({
      kind: 'user',
      userId: 'carol',
      roles: new Set(['host']),
    });
    // An RS256 token cannot borrow the EC key's kid.
    await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'ec-1', key: rsa.privateKey })), 'bad_signature');
  });

  it('rejects an asymmetric algorithm that is not pinned', async () => {
    const ec = await keyPair('ES256', 'ec-1');
    const server = await startJwksServer({ keys: [ec.jwk] });
    const verifier = jwksVerifier(server.url, { JWT_ALGORITHMS: 'RS256' });
    const error = await expectRejected(verifier.verify(await sign({}, { alg: 'ES256', kid: 'ec-1', key: ec.privateKey })), 'bad_signature');
    expect(error.message).toBe('Token algorithm is not allowed');
    expect(server.requestCount()).toBe(0);
  });

  // jose throws a plain TypeError ("fetch failed") for a refused connection and a generic
  // JOSEError for a non-200 response; neither is the client's fault.
  it('reports an unreachable JWKS server as unavailable', async () => {
    const rsa = await keyPair('RS256', 'rsa-1');
    const verifier = jwksVerifier(await unreachableJwksUrl());
    const error = await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-1', key: rsa.privateKey })), 'unavailable');
    expect(error.message).toBe('Signing keys are unavailable; try again');
  });

  it('reports a JWKS server answering 500 as unavailable', async () => {
    const rsa = await keyPair('RS256', 'rsa-1');
    const server = await startJwksServer({ error: 'boom' }, { status: 500 });
    const verifier = jwksVerifier(server.url);
    await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-1', key: rsa.privateKey })), 'unavailable');
    expect(server.requestCount()).toBe(1);
  });

  it('reports an invalid key set as unavailable', async () => {
    const rsa = await keyPair('RS256', 'rsa-1');
    const server = await startJwksServer({ notKeys: [] });
    const verifier = jwksVerifier(server.url);
    const error = await expectRejected(verifier.verify(await sign({}, { alg: 'RS256', kid: 'rsa-1', key: rsa.privateKey })), 'unavailable');
    expect(error.message).toBe('Signing keys are unavailable; try again');
  });
});
