import type { ExecutionResult } from 'graphql';
import { Repeater, type Plugin } from 'graphql-yoga';
import type { GraphQLContext } from '../schema/context.js';
import type { ResultSink, SharedDeliveries } from './shared-delivery.js';

/**
 * SSE subscriptions delivered by the shared deliveries, as WebSocket ones are: the same groups
 * (an SSE subscriber and a WebSocket one with the same key share one execution per event), the
 * same topic naming and authorization (the root field's resolver, or a running group's topic),
 * the same per-member guard. What Yoga does for every subscription still happens around it, as
 * an envelop plugin: parse, validation, the context, every plugin's `onSubscribe` (admission:
 * rate limit and quota; its unit is given back when this stream ends) and the stream guards'
 * wrapper (expiry, revocation, slow consumers, presence). The stream handed back yields the
 * group's results; Yoga writes them as SSE events.
 *
 * A subscription whose resolver names no topic (no shared delivery can feed it) runs through
 * Yoga's own subscribe, as it would without this plugin.
 */
export function useSharedSseDeliveries(deliveries: SharedDeliveries): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      if ((args.contextValue as GraphQLContext).transport !== 'sse') return;
      setSubscribeFn(async (subscribeArgs) => {
        const sink = new StreamSink();
        const member = deliveries.memberOf(subscribeArgs, '""', sink);
        if (!member) return subscribeFn(subscribeArgs);
        const named = await deliveries.topicFor(member);
        if ('errors' in named) return { errors: [...named.errors] } satisfies ExecutionResult;
        if ('stream' in named) {
          void named.stream.return?.();
          return subscribeFn(subscribeArgs);
        }
        // Joined once Yoga starts reading (at once, for the response), and left when it stops.
        return new Repeater<ExecutionResult>(async (push, stop) => {
          sink.push = push;
          const joined = deliveries.joinAdmitted(named, member, { ended: { release: () => stop() } });
          await stop;
          joined.stop();
        });
      });
    },
  };
}

/** Where a group's results for one SSE subscriber go: its stream. */
class StreamSink implements ResultSink {
  push: ((result: ExecutionResult) => Promise<unknown>) | undefined = undefined;
  /** The stream guards count every result an SSE stream yields. */
  readonly countedByTransport = true;

  next(_idJson: string, _payloadJson: string, result: ExecutionResult): void {
    this.push?.(result).catch(ignore);
  }
}

/** A push into a stopped stream is dropped: nobody reads it any more. */
const ignore = (): void => undefined;
