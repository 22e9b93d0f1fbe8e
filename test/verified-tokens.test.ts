import { describe, expect, it } from 'vitest';
import { VerifiedTokens, type VerifiedPrincipal } from '../src/auth/verified-tokens.js';
import { createTokenVerifier } from '../src/auth/token-verifier.js';
import { TokenRejectedError } from '../src/auth/token-verifier.js';
import { testConfig, tokenFor } from './support/gateway.js';

const principal = (userId: string): VerifiedPrincipal => ({ kind: 'user', userId, roles: new Set(['user']), expiresAt: undefined, issuedAt: undefined });

describe('VerifiedTokens', () => {
  it('remembers at most `max` tokens, the least recently used going first', () => {
    const tokens = new VerifiedTokens({ max: 2 });
    tokens.remember('a', principal('a'));
    tokens.remember('b', principal('b'));
    expect(tokens.get('a')?.userId).toBe('a');
    tokens.remember('c', principal('c'));
    expect(tokens.get('b')).toBeUndefined();
    expect(tokens.get('a')?.userId).toBe('a');
    expect(tokens.size).toBe(2);
  });

  it('forgets a token older than maxAgeMs (keys from a JWKS)', () => {
    let now = 1_000;
    const tokens = new VerifiedTokens({ max: 10, maxAgeMs: 120_000, now: () => now });
    tokens.remember('t', principal('alice'));
    now += 119_000;
    expect(tokens.get('t')?.userId).toBe('alice');
    now += 2_000;
    expect(tokens.get('t')).toBeUndefined();
  });

  it('remembers nothing when its size or age is 0', () => {
    for (const options of [{ max: 0 }, { max: 10, maxAgeMs: 0 }]) {
      const tokens = new VerifiedTokens(options);
      tokens.remember('t', principal('alice'));
      expect(tokens.get('t')).toBeUndefined();
    }
  });
});

describe('the token verifier with remembered tokens', () => {
  it('answers a remembered token without verifying it again, and still refuses it once expired', async () => {
    const verified = new VerifiedTokens({ max: 10 });
    const verifier = createTokenVerifier(testConfig().auth, { verified });
    const token = await tokenFor('alice', ['user'], { expiresInSeconds: 1 });
    const first = await verifier.verify(token);
    expect(verified.get(token)).toBe(first);
    // The same object: the connection's principal is the cache's entry, not a copy.
    expect(await verifier.verify(token)).toBe(first);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await expect(verifier.verify(token)).rejects.toSatisfy((error) => error instanceof TokenRejectedError && error.reason === 'expired');
    expect(verified.get(token)).toBeUndefined();
  });

  it('never remembers a token that failed', async () => {
    const verified = new VerifiedTokens({ max: 10 });
    const verifier = createTokenVerifier(testConfig().auth, { verified });
    const forged = await tokenFor('mallory', ['admin'], { secret: 'another-secret-of-at-least-32-characters!!' });
    await expect(verifier.verify(forged)).rejects.toBeInstanceOf(TokenRejectedError);
    expect(verified.size).toBe(0);
  });
});
