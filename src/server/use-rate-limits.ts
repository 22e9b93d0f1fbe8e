import { getOperationAST, type ExecutionResult, type GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { hasRole } from '../auth/principal.js';
import { rateLimited } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { RateBudget, RateLimiter } from '../protection/rate-limiter.js';
import type { GraphQLContext } from '../schema/context.js';

export interface RateBudgets {
  /** Every operation: query, mutation and subscribe, on every transport. */
  readonly operations: RateBudget;
  /** Each sendChatMessage call, which starts work in the chat backend, on top of `operations`. */
  readonly chat: RateBudget;
}

/** Charges one unit of a named budget to the caller; rejects with RATE_LIMITED when it is spent. */
export type ChargeRateBudget = (budget: Exclude<keyof RateBudgets, 'operations'>) => Promise<void>;

function clientKey(context: GraphQLContext): string {
  return context.principal.kind === 'user' ? `user:${context.principal.userId}` : `ip:${context.clientAddress ?? 'unknown'}`;
}

/**
 * Charges one unit of the `operations` budget to the caller of an operation; resolves
 * to the RATE_LIMITED error it gets when the budget is spent. Services are exempt. Used by the
 * plugin below (queries, mutations) and by SubscriptionAdmission (subscribes).
 */
export function createOperationCharge(deps: { limiter: RateLimiter; budgets: RateBudgets; metrics: GatewayMetrics }) {
  const consume = async (context: GraphQLContext, budget: RateBudget) => {
    const decision = await deps.limiter.consume(clientKey(context), budget);
    if (decision.allowed) return undefined;
    deps.metrics.limitTrips.inc({ limit: `rate_${budget.name}` });
    context.onRateLimited?.();
    const seconds = Math.ceil(decision.retryAfterMs / 1000);
    return rateLimited(`Too many requests (${budget.name}); retry in ${seconds} s`, budget.name, decision.retryAfterMs);
  };
  const exempt = (context: GraphQLContext) => hasRole(context.principal, 'service');
  return {
    operation: (context: GraphQLContext): Promise<GraphQLError | undefined> =>
      exempt(context) ? Promise.resolve(undefined) : consume(context, deps.budgets.operations),
    chargeFor:
      (context: GraphQLContext): ChargeRateBudget =>
      async (name) => {
        if (exempt(context)) return;
        const refusal = await consume(context, deps.budgets[name]);
        if (refusal) throw refusal;
      },
  };
}

/**
 * A sliding-window budget per user (per IP when anonymous) on every operation (queries, mutations,
 * subscribes), on every transport, across instances when the limiter is Redis-backed: a query is
 * cheap, but ten thousand a second are not. A refused operation gets RATE_LIMITED with
 * retryAfterMs, and over WebSocket counts as a strike (4290 after too many). Expensive fields charge their own
 * budget each time they run (`context.chargeRateBudget`), so aliases and fragments cannot
 * multiply them for free. Backend services (role `service`) are not limited: they are trusted
 * publishers whose rate is the product's, not an abuser's.
 */
export function useRateLimits(deps: { limiter: RateLimiter; budgets: RateBudgets; metrics: GatewayMetrics }): Plugin<GraphQLContext> {
  const charge = createOperationCharge(deps);
  return {
    // Subscribes are charged by useSubscriptionAdmission, together with their quota.
    async onExecute({ args, setResultAndStopExecution, extendContext }) {
      const context = args.contextValue as GraphQLContext;
      if (getOperationAST(args.document, args.operationName)?.operation === 'mutation') {
        extendContext({ chargeRateBudget: charge.chargeFor(context) } as Partial<GraphQLContext>);
      }
      const refusal = await charge.operation(context);
      if (refusal) setResultAndStopExecution({ errors: [refusal] } as ExecutionResult);
    },
  };
}
