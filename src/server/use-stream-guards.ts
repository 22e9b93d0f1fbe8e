import { isAsyncIterable, Repeater, type Plugin } from 'graphql-yoga';
import type { ExecutionResult } from 'graphql';
import { slowConsumer, unauthenticated } from '../errors.js';
import type { GraphQLContext } from '../schema/context.js';
import { atExpiry } from '../auth/expiry.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { SessionRevocations } from '../sessions/session-revocations.js';

/**
 * Results one subscription may have waiting for its transport. WebSocket writes never wait (its
 * bound is in bytes, see OutgoingQueue), so this only fills when a transport applies
 * backpressure: an SSE client that stops reading.
 */
export const MAX_PENDING_RESULTS = 1_000;

/**
 * Wraps every subscription's result stream, on every transport, once:
 * - it ends when the principal's token expires or the user's sessions are revoked, with one final
 *   UNAUTHENTICATED error (reason `expired` or `revoked`) so the client can come back with a fresh
 *   token (a WebSocket connection is also closed with 4403);
 * - it ends with SLOW_CONSUMER when the client falls MAX_PENDING_RESULTS results behind, instead of
 *   silently dropping events or holding more of them.
 */
export function useStreamGuards(deps: { clockToleranceMs: number; revocations: SessionRevocations; metrics: GatewayMetrics }): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args }) {
      const principal = (args.contextValue as GraphQLContext).principal;
      // Verification accepts a token up to the clock tolerance past `exp`; end it there too.
      const expiresAt = principal.kind === 'user' && principal.expiresAt !== undefined ? principal.expiresAt + deps.clockToleranceMs : undefined;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return;
          const source = result as AsyncIterableIterator<ExecutionResult>;
          setResult(
            new Repeater<ExecutionResult>(async (push, stop) => {
              let ended = false;
              const endWith = (final: ExecutionResult) => {
                if (ended) return;
                ended = true;
                void push(final);
                stop();
              };
              const cancelExpiry =
                expiresAt === undefined
                  ? undefined
                  : atExpiry(expiresAt, () => endWith({ errors: [unauthenticated('Token has expired; reconnect with a fresh token', 'expired')] }));
              const cancelWatch =
                principal.kind === 'user'
                  ? deps.revocations.watch(principal, () => endWith({ errors: [unauthenticated('Session was revoked; sign in again', 'revoked')] }))
                  : undefined;
              void stop.then(() => source.return?.());
              let pending = 0;
              try {
                // Pulled eagerly, so a lagging client shows up here as pending results.
                for await (const value of source) {
                  if (ended) break;
                  if (pending >= MAX_PENDING_RESULTS) {
                    deps.metrics.limitTrips.inc({ limit: 'slow_consumer' });
                    endWith({ errors: [slowConsumer(`More than ${MAX_PENDING_RESULTS} results were not read in time; subscribe again`)] });
                    break;
                  }
                  pending++;
                  void push(value).then(() => pending--);
                }
              } finally {
                cancelExpiry?.();
                cancelWatch?.();
                stop();
              }
            }),
          );
        },
      };
    },
  };
}
