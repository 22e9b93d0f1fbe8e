import { createSchema, createYoga } from 'graphql-yoga';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/principal.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { createMemoryUserQuotas } from '../src/protection/user-quotas.js';
import { createMemoryRateLimiter } from '../src/protection/rate-limiter.js';
import { createSubscriptionAdmission } from '../src/server/subscription-admission.js';
import { useSubscriptionAdmission } from '../src/server/use-subscription-admission.js';

const alice: Principal = { kind: 'user', userId: 'alice', roles: new Set(['user']), expiresAt: undefined, issuedAt: undefined };

/** A real Yoga whose only subscription fails after its first event, with the admission plugin. */
function yogaWithFailingStream() {
  const quotas = createMemoryUserQuotas();
  const yoga = createYoga({
    schema: createSchema({
      typeDefs: 'type Query { ok: Boolean } type Subscription { flaky: Int }',
      resolvers: {
        Subscription: {
          flaky: {
            async *subscribe() {
              yield { flaky: 1 };
              throw new Error('upstream failed');
            },
          },
        },
      },
    }),
    context: () => ({ principal: alice }),
    plugins: [
      useSubscriptionAdmission(
        createSubscriptionAdmission({
          limiter: createMemoryRateLimiter(),
          budgets: { operations: { name: 'operations', limit: 100, windowMs: 60_000 }, chat: { name: 'chat', limit: 100, windowMs: 60_000 } },
          quotas,
          maxPerUser: 1,
          maxPerAddress: 1,
          metrics: createMetrics(),
        }),
      ),
    ],
    logging: false,
  });
  /** As the WebSocket transport runs an operation: Yoga's envelop, iterated like graphql-ws does. */
  const subscribe = async () => {
    const enveloped = yoga.getEnveloped({});
    const document = enveloped.parse('subscription { flaky }');
    const result = await enveloped.subscribe({ schema: enveloped.schema, document, contextValue: await enveloped.contextFactory() });
    const values: unknown[] = [];
    try {
      for await (const value of result as AsyncIterable<unknown>) values.push(value);
    } catch (error) {
      values.push(error instanceof Error ? error.message : error);
    }
    return JSON.stringify(values);
  };
  return { quotas, subscribe };
}

describe('subscription quota units', () => {
  it('come back when a subscription stream fails, not only when it completes', async () => {
    const { quotas, subscribe } = yogaWithFailingStream();
    const first = await subscribe();
    expect(first).toContain('"flaky":1');
    expect(quotas.heldLocally('subscriptions', 'alice')).toBe(0);
    // With a limit of one, a leaked unit would refuse this one.
    const second = await subscribe();
    expect(second).toContain('"flaky":1');
    expect(second).not.toContain('LIMIT_EXCEEDED');
  });
});

describe('subscription admission', () => {
  const budgets = (limit: number) => ({ operations: { name: 'operations', limit, windowMs: 60_000 }, chat: { name: 'chat', limit, windowMs: 60_000 } });
  const context = { principal: alice } as never;

  it('gives back the quota unit of a subscribe the rate limit refused', async () => {
    const quotas = createMemoryUserQuotas();
    const admission = createSubscriptionAdmission({ limiter: createMemoryRateLimiter(), budgets: budgets(1), quotas, maxPerUser: 10, maxPerAddress: 10, metrics: createMetrics() });
    const first = await admission.admit(context);
    expect(first.ok).toBe(true);
    const second = await admission.admit(context);
    expect(second.ok ? undefined : second.error.extensions['code']).toBe('RATE_LIMITED');
    expect(quotas.heldLocally('subscriptions', 'alice')).toBe(1);
  });

  it('refuses with LIMIT_EXCEEDED when the quota is used up', async () => {
    const quotas = createMemoryUserQuotas();
    const admission = createSubscriptionAdmission({ limiter: createMemoryRateLimiter(), budgets: budgets(10), quotas, maxPerUser: 1, maxPerAddress: 1, metrics: createMetrics() });
    expect((await admission.admit(context)).ok).toBe(true);
    const refused = await admission.admit(context);
    expect(refused.ok ? undefined : refused.error.extensions['code']).toBe('LIMIT_EXCEEDED');
  });
});
