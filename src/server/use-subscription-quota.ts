import type { ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { limitExceeded } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { UserQuotas } from '../protection/user-quotas.js';
import type { GraphQLContext } from '../schema/context.js';

/**
 * At most `maxPerUser` open subscriptions per user, over every transport and (with Redis) every
 * instance. A unit is taken when the subscription starts and given back when it ends for any
 * reason: completed by the client, refused, errored, or its connection closed.
 */
export function useSubscriptionQuota(deps: { quotas: UserQuotas; maxPerUser: number; metrics: GatewayMetrics }): Plugin<GraphQLContext> {
  return {
    async onSubscribe({ args, setResultAndStopExecution }) {
      const principal = (args.contextValue as GraphQLContext).principal;
      if (principal.kind !== 'user') return;
      const lease = await deps.quotas.acquire('subscriptions', principal.userId, deps.maxPerUser);
      if (!lease) {
        deps.metrics.limitTrips.inc({ limit: 'subscriptions_per_user' });
        setResultAndStopExecution({
          errors: [limitExceeded(`At most ${deps.maxPerUser} subscriptions may be open per user`, 'subscriptions_per_user')],
        } as ExecutionResult);
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
