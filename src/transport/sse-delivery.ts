import type { ExecutionResult } from 'graphql';
import { isAsyncIterable, Repeater, SlidingBuffer, type Plugin } from 'graphql-yoga';
import { SUBSCRIBER_BUFFER_EVENTS } from '../bus/local-fanout.js';
import type { GraphQLContext } from '../schema/context.js';
import type { ResultSink, SharedDeliveries } from './shared-delivery.js';

/**
 * SSE subscriptions delivered by the shared deliveries, as WebSocket ones are: the same groups
 * (an SSE subscriber and a WebSocket one with the same key share one execution per event) and
 * the same per-member guards. An envelop plugin, so everything Yoga does for a subscription
 * still happens: parse, validation, the context, every plugin's `onSubscribe` (admission: rate
 * limit and quota, its unit given back when this stream ends), the subscribe itself (the root
 * field's authorization, and its resolver naming the topic through `context.sharedDelivery`),
 * and the plugins' wrappers around the stream handed back (the stream guards: expiry,
 * revocation, slow consumers, presence). That stream yields the group's results; Yoga writes
 * them as SSE events. A resolver that opens a stream of its own instead runs as it is.
 */
export function useSharedSseDeliveries(deliveries: SharedDeliveries): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      if ((args.contextValue as GraphQLContext).transport !== 'sse') return;
      setSubscribeFn(async (subscribeArgs) => {
        const sink = new StreamSink();
        const member = deliveries.memberOf(subscribeArgs, '""', sink);
        if (!member) return subscribeFn(subscribeArgs);
        const naming = deliveries.naming();
        const result = await subscribeFn({ ...subscribeArgs, contextValue: { ...(subscribeArgs.contextValue as GraphQLContext), sharedDelivery: naming } });
        const named = naming.named;
        // What the resolver handed over (a member's presence in its conversation) is given back
        // when the member ends, or here when it never joins: refused, or the client gone before
        // Yoga started reading.
        if (!named || !isAsyncIterable(result)) {
          naming.releaseHeld();
          return result;
        }
        const request = (subscribeArgs.contextValue as { request?: Request }).request;
        request?.signal.addEventListener('abort', () => naming.releaseHeld(), { once: true });
        // The executor's stream over the resolver's (which yields nothing): the group feeds this one.
        (result as AsyncIterableIterator<unknown>).return?.()?.catch(ignore);
        // Joined once Yoga starts reading (at once, for the response), and left when it stops.
        // Buffered, so a burst (one dispatch of many events) can never make a push throw, which
        // would fail the group for every member; a reader that falls behind is the stream guards'.
        return new Repeater<ExecutionResult>(async (push, stop) => {
          sink.push = push;
          const held = naming.held;
          naming.held = undefined;
          const joined = deliveries.join(named, member, { held, ended: { release: () => stop() } });
          await stop;
          joined.stop();
        }, new SlidingBuffer(SUBSCRIBER_BUFFER_EVENTS));
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
    try {
      this.push?.(result).catch(ignore);
    } catch {
      // A stream that cannot take more is this subscriber's alone: the others still get it.
    }
  }
}

/** A push into a stopped stream is dropped: nobody reads it any more. */
const ignore = (): void => undefined;
