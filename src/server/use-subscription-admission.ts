import type { ExecutionResult, GraphQLError } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { limitExceeded } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { addressQuotaKey } from '../protection/address-key.js';
import type { QuotaLease, UserQuotas } from '../protection/user-quotas.js';
import type { GraphQLContext } from '../schema/context.js';
import type { SubscriptionAdmission } from './subscription-admission.js';

/**
 * Takes one unit of the caller's subscription quota: a user's, or an anonymous caller's address'
 * (addressQuotaKey); resolves to the LIMIT_EXCEEDED error when none is left.
 */
export function createSubscriptionUnits(deps: { quotas: UserQuotas; maxPerUser: number; maxPerAddress: number; metrics: GatewayMetrics }) {
  return async (context: GraphQLContext): Promise<{ readonly lease: QuotaLease | undefined } | { readonly refusal: GraphQLError }> => {
    const principal = context.principal;
    if (principal.kind === 'user') {
      const lease = await deps.quotas.acquire('subscriptions', principal.userId, deps.maxPerUser);
      if (lease) return { lease };
      deps.metrics.limitTrips.inc({ limit: 'subscriptions_per_user' });
      return { refusal: limitExceeded(`At most ${deps.maxPerUser} subscriptions may be open per user`, 'subscriptions_per_user') };
    }
    const lease = await deps.quotas.acquire('address-subscriptions', addressQuotaKey(context.clientAddress), deps.maxPerAddress);
    if (lease) return { lease };
    deps.metrics.limitTrips.inc({ limit: 'subscriptions_per_address' });
    return { refusal: limitExceeded(`At most ${deps.maxPerAddress} anonymous subscriptions may be open per address`, 'subscriptions_per_address') };
  };
}

/**
 * Admits every subscribe on every transport through SubscriptionAdmission (the rate limit and
 * the caller's subscription quota, checked together). The quota unit is given back when the
 * subscription ends for any reason: completed by the client, refused, errored, or its connection
 * closed; a shared delivery (context.sharedDelivery) is handed the unit and gives it back then.
 */
export function useSubscriptionAdmission(admission: SubscriptionAdmission): Plugin<GraphQLContext> {
  return {
    async onSubscribe({ args, setResultAndStopExecution }) {
      const admitted = await admission.admit(args.contextValue as GraphQLContext);
      if (!admitted.ok) {
        setResultAndStopExecution({ errors: [admitted.error] } as ExecutionResult);
        return;
      }
      const lease = admitted.lease;
      if (!lease) return;
      // A shared delivery ends the subscription itself, after its result stream is long gone.
      const shared = (args.contextValue as GraphQLContext).sharedDelivery;
      if (shared) {
        shared.holdUntilEnded(lease);
        return;
      }
      // An SSE client may leave while its subscription is being set up; then no stream ever
      // starts (and nothing would end it), so the request's end gives the unit back.
      const request = (args.contextValue as { request?: Request }).request;
      request?.signal.addEventListener('abort', () => lease.release(), { once: true });
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) {
            lease.release();
            return;
          }
          return { onEnd: () => lease.release() };
        },
        // A stream that throws never reaches onEnd (envelop only calls it on done or return()).
        onSubscribeError: () => lease.release(),
      };
    },
  };
}
