import { isAsyncIterable, Repeater, type Plugin } from 'graphql-yoga';
import { getOperationAST, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Presence, PresenceEntry } from '../observability/presence.js';
import { isWithheldField, slowConsumer, unauthenticated } from '../errors.js';
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
 * - over HTTP/SSE it ends when the principal's token expires or the user's sessions are revoked,
 *   with one final UNAUTHENTICATED error (reason `expired` or `revoked`) so the client can come back
 *   with a fresh token (a WebSocket connection is closed as a whole with 4403 instead);
 * - it ends with SLOW_CONSUMER when the client falls MAX_PENDING_RESULTS results behind, instead of
 *   silently dropping events or holding more of them.
 */
export function useStreamGuards(deps: {
  clockToleranceMs: number;
  revocations: SessionRevocations;
  metrics: GatewayMetrics;
  presence: Presence;
}): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args }) {
      const context = args.contextValue as GraphQLContext;
      const principal = context.principal;
      const field = rootFieldOf(args.document, args.operationName);
      // A WebSocket connection ends as a whole at expiry or revocation (4403), and its client
      // reconnects and resubscribes; ending its subscriptions here too would race that close and
      // complete them for good. HTTP/SSE subscriptions are their own connection.
      const guardSession = principal.kind === 'user' && context.transport !== 'websocket';
      // Verification accepts a token up to the clock tolerance past `exp`; end it there too.
      const expiresAt = guardSession && principal.expiresAt !== undefined ? principal.expiresAt + deps.clockToleranceMs : undefined;
      if (context.transport === 'websocket') {
        // Nothing to guard per stream: the connection handles expiry, revocation and slow
        // consumers (OutgoingQueue), and sends never wait. So no wrapping stream either, only
        // hooks: a Repeater per subscriber would cost kilobytes for as long as it is open.
        let subscriptionPresence: PresenceEntry | undefined;
        const leave = () => {
          subscriptionPresence?.release();
          subscriptionPresence = undefined;
        };
        const shared = context.sharedDelivery;
        return {
          onSubscribeResult({ result }) {
            if (!isAsyncIterable(result)) return;
            // A shared delivery ends the subscription itself (and counts what its groups deliver:
            // a joined subscriber's stream yields nothing, so onNext below counts only a stream
            // that runs as it is).
            if (shared) shared.holdUntilEnded(deps.presence.subscriptionStarted(field));
            else subscriptionPresence = deps.presence.subscriptionStarted(field);
            return {
              onNext({ result: value }) {
                deps.metrics.countDelivered(field, 1);
                if ((value as ExecutionResult).errors?.some(isWithheldField)) deps.metrics.eventsDropped.inc({ reason: 'unauthorized_field', source: field });
              },
              onEnd: leave,
            };
          },
          // A stream that throws never reaches onEnd.
          onSubscribeError: leave,
        };
      }
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
              const watch =
                guardSession && principal.kind === 'user'
                  ? deps.revocations.watch(principal, { sessionRevoked: () => endWith({ errors: [unauthenticated('Session was revoked; sign in again', 'revoked')] }) })
                  : undefined;
              void stop.then(() => source.return?.());
              // An SSE request carries one subscription: it is the connection.
              const connectionPresence = context.transport === 'sse' ? deps.presence.connectionOpened('sse', principal) : undefined;
              const subscriptionPresence = deps.presence.subscriptionStarted(field);
              let pending = 0;
              try {
                // Pulled eagerly, so a lagging client shows up here as pending results.
                for await (const value of source) {
                  if (ended) break;
                  if (pending >= MAX_PENDING_RESULTS) {
                    deps.metrics.limitTrips.inc({ limit: 'slow_consumer' });
                    deps.metrics.eventsDropped.inc({ reason: 'slow_consumer', source: context.transport });
                    endWith({ errors: [slowConsumer(`More than ${MAX_PENDING_RESULTS} results were not read in time; subscribe again`)] });
                    break;
                  }
                  pending++;
                  deps.metrics.countDelivered(field, 1);
                  if (value.errors?.some(isWithheldField)) deps.metrics.eventsDropped.inc({ reason: 'unauthorized_field', source: field });
                  void push(value).then(() => pending--);
                }
              } finally {
                cancelExpiry?.();
                watch?.cancel();
                subscriptionPresence.release();
                connectionPresence?.release();
                stop();
              }
            }),
          );
        },
      };
    },
  };
}

function rootFieldOf(document: DocumentNode, operationName: string | null | undefined): string {
  const selection = getOperationAST(document, operationName)?.selectionSet.selections[0];
  return selection?.kind === 'Field' ? selection.name.value : 'unknown';
}
