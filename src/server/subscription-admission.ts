import type { GraphQLError } from 'graphql';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { RateLimiter } from '../protection/rate-limiter.js';
import type { QuotaLease, UserQuotas } from '../protection/user-quotas.js';
import type { GraphQLContext } from '../schema/context.js';
import { createOperationCharge, type RateBudgets } from './use-rate-limits.js';
import { createSubscriptionUnits } from './use-subscription-quota.js';

/** Admitted, with the quota unit taken (none for callers without a quota), or refused. */
export type Admission = { readonly ok: true; readonly lease: QuotaLease | undefined } | { readonly ok: false; readonly error: GraphQLError };

/**
 * The per-subscriber checks of a subscribe, in the order the envelop plugins apply them (the rate
 * limit, then the caller's subscription quota), for subscribers the WebSocket transport adds to a
 * running shared delivery without a pipeline of their own. The checks are the plugins' own
 * (createOperationCharge, createSubscriptionUnits), so both paths limit alike.
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
      const refusal = await charge.operation(context);
      if (refusal) return { ok: false, error: refusal };
      const unit = await take(context);
      if ('refusal' in unit) return { ok: false, error: unit.refusal };
      return { ok: true, lease: unit.lease };
    },
  };
}

export type SubscriptionAdmission = ReturnType<typeof createSubscriptionAdmission>;
