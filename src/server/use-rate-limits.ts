import { getOperationAST, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { rateLimited } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { RateBudget, RateLimiter } from '../protection/rate-limiter.js';
import type { GraphQLContext } from '../schema/context.js';

export interface RateBudgets {
  /** Every subscribe and every mutation. */
  readonly operations: RateBudget;
  /** sendChatMessage, which starts work in the chat backend, on top of `operations`. */
  readonly chat: RateBudget;
}

/** Mutations whose cost warrants their own, smaller budget. */
const EXPENSIVE_FIELDS: ReadonlyMap<string, keyof RateBudgets> = new Map([['sendChatMessage', 'chat']]);

function clientKey(context: GraphQLContext): string {
  return context.principal.kind === 'user' ? `user:${context.principal.userId}` : `ip:${context.clientAddress ?? 'unknown'}`;
}

function expensiveBudgets(document: DocumentNode, operationName: string | null | undefined): Array<keyof RateBudgets> {
  const operation = getOperationAST(document, operationName);
  const budgets = new Set<keyof RateBudgets>();
  for (const selection of operation?.selectionSet.selections ?? []) {
    if (selection.kind !== 'Field') continue;
    const budget = EXPENSIVE_FIELDS.get(selection.name.value);
    if (budget) budgets.add(budget);
  }
  return [...budgets];
}

/**
 * A sliding-window budget per user (per IP when anonymous) on subscribe operations and mutations,
 * on every transport, across instances when the limiter is Redis-backed. A refused operation gets
 * RATE_LIMITED with retryAfterMs; queries are not limited here.
 */
export function useRateLimits(deps: { limiter: RateLimiter; budgets: RateBudgets; metrics: GatewayMetrics }): Plugin<GraphQLContext> {
  const decide = async (context: GraphQLContext, document: DocumentNode, operationName: string | null | undefined) => {
    const key = clientKey(context);
    const wanted = [deps.budgets.operations, ...expensiveBudgets(document, operationName).map((name) => deps.budgets[name])];
    for (const budget of wanted) {
      const decision = await deps.limiter.consume(key, budget);
      if (!decision.allowed) {
        deps.metrics.limitTrips.inc({ limit: `rate_${budget.name}` });
        context.onRateLimited?.();
        const seconds = Math.ceil(decision.retryAfterMs / 1000);
        return { errors: [rateLimited(`Too many requests (${budget.name}); retry in ${seconds} s`, budget.name, decision.retryAfterMs)] } as ExecutionResult;
      }
    }
    return undefined;
  };

  return {
    async onSubscribe({ args, setResultAndStopExecution }) {
      const refusal = await decide(args.contextValue as GraphQLContext, args.document, args.operationName);
      if (refusal) setResultAndStopExecution(refusal);
    },
    async onExecute({ args, setResultAndStopExecution }) {
      if (getOperationAST(args.document, args.operationName)?.operation !== 'mutation') return;
      const refusal = await decide(args.contextValue as GraphQLContext, args.document, args.operationName);
      if (refusal) setResultAndStopExecution(refusal);
    },
  };
}
