import { isAsyncIterable, Repeater, type Plugin } from 'graphql-yoga';
import type { ExecutionResult } from 'graphql';
import { unauthenticated } from '../errors.js';
import type { GraphQLContext } from '../schema/context.js';
import { atExpiry } from '../auth/expiry.js';
import type { SessionRevocations } from '../sessions/session-revocations.js';

/**
 * A token is checked when a connection or request starts, but subscriptions outlive it. This
 * ends every subscription, on every transport, when its principal's token expires or the user's
 * sessions are revoked: one final UNAUTHENTICATED error (reason `expired` or `revoked`) so the
 * client can reconnect with a fresh token. (A WebSocket connection is also closed with 4403.)
 */
export function useSessionLifetime(deps: { clockToleranceMs: number; revocations: SessionRevocations }): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args }) {
      const principal = (args.contextValue as GraphQLContext).principal;
      if (principal.kind !== 'user') return;
      // Verification accepts a token up to the clock tolerance past `exp`; end it there too.
      const expiresAt = principal.expiresAt === undefined ? undefined : principal.expiresAt + deps.clockToleranceMs;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return;
          const source = result as AsyncIterableIterator<ExecutionResult>;
          setResult(
            new Repeater<ExecutionResult>(async (push, stop) => {
              const endWith = (message: string, reason: string) => {
                void push({ errors: [unauthenticated(message, reason)] });
                stop();
              };
              const cancelExpiry =
                expiresAt === undefined ? undefined : atExpiry(expiresAt, () => endWith('Token has expired; reconnect with a fresh token', 'expired'));
              const cancelWatch = deps.revocations.watch(principal, () => endWith('Session was revoked; sign in again', 'revoked'));
              void stop.then(() => source.return?.());
              try {
                for await (const value of source) await push(value);
              } finally {
                cancelExpiry?.();
                cancelWatch();
                stop();
              }
            }),
          );
        },
      };
    },
  };
}
