import type { GraphQLError } from 'graphql';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { RateLimiter } from '../protection/rate-limiter.js';
import type { QuotaLease, UserQuotas } from '../protection/user-quotas.js';
import type { GraphQLContext } from '../schema/context.js';
import { createOperationCharge, type RateBudgets } from './use-rate-limits.js';
import { createSubscriptionUnits } from './use-subscription-admission.js';

/** Admitted, with the quota unit taken (none for callers without a quota), or refused. */
export type Admission = { readonly ok: true; readonly lease: QuotaLease | undefined } | { readonly ok: false; readonly error: GraphQLError };

/**
 * The per-subscriber checks of a subscribe: the rate limit and the caller's subscription quota,
 * applied by the envelop plugin (useSubscriptionAdmission) to every subscribe on every transport.
 *
 * Both are asked at once: with Redis they are two scripts on one connection, sent together, so a
 * subscribe (a reconnecting crowd resubscribes everything) waits for one round trip, not two.
 * The rate limit still decides first: a rate-limited subscribe gives back the quota unit it got.
 */
export function createSubscriptionAdmission(deps: {
  limiter: RateLimiter;
  budgets: RateBudgets;
  quotas: UserQuotas;
  maxPerUser: number;
  maxPerAddress: number;
  metrics: GatewayMetrics;
}) {
  const charge = createOperationCharge(deps);
  const take = createSubscriptionUnits(deps);
  return {
    async admit(context: GraphQLContext): Promise<Admission> {
      const [refusal, unit] = await Promise.all([charge.operation(context), take(context)]);
      if (refusal) {
        if ('lease' in unit) unit.lease?.release();
        return { ok: false, error: refusal };
      }
      if ('refusal' in unit) return { ok: false, error: unit.refusal };
      return { ok: true, lease: unit.lease };
    },
  };
}

export type SubscriptionAdmission = ReturnType<typeof createSubscriptionAdmission>;
