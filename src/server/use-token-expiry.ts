import { isAsyncIterable, Repeater, type Plugin } from 'graphql-yoga';
import type { ExecutionResult } from 'graphql';
import { unauthenticated } from '../errors.js';
import type { GraphQLContext } from '../schema/context.js';
import { atExpiry } from '../auth/expiry.js';

/**
 * A token is checked when a connection or request starts, but subscriptions outlive it. This
 * ends every subscription, on every transport, when its principal's token expires: one final
 * UNAUTHENTICATED error (reason `expired`) so the client can reconnect with a fresh token.
 */
export function useTokenExpiry(clockToleranceMs: number): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args }) {
      const principal = (args.contextValue as GraphQLContext).principal;
      if (principal.kind !== 'user' || principal.expiresAt === undefined) return;
      // Verification accepts a token up to the clock tolerance past `exp`; end it there too.
      const expiresAt = principal.expiresAt + clockToleranceMs;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return;
          const source = result as AsyncIterableIterator<ExecutionResult>;
          setResult(
            new Repeater<ExecutionResult>(async (push, stop) => {
              const cancel = atExpiry(expiresAt, () => {
                void push({ errors: [unauthenticated('Token has expired; reconnect with a fresh token', 'expired')] });
                stop();
              });
              void stop.then(() => source.return?.());
              try {
                for await (const value of source) await push(value);
              } finally {
                cancel();
                stop();
              }
            }),
          );
        },
      };
    },
  };
}
