import { LRUCache } from 'lru-cache';
import type { TidingsEvent } from '../events/contracts.js';
import { topicsOf } from '../events/topics.js';
import { recordArrival, type GatewayMetrics } from '../metrics/metrics.js';
import type { EventBus } from './event-bus.js';
import { LocalFanout, newTally } from './local-fanout.js';
import { deliveryAttributes, type EventTracing } from '../observability/tracing.js';

/** Event ids publishOnce remembers at most; the oldest are forgotten first (bounded memory). */
export const MEMORY_PUBLISHED_IDS = 100_000;

/** Single-instance pub/sub: publishing hands the event straight to local subscribers. */
export function createMemoryEventBus(options: { metrics?: GatewayMetrics; tracing?: EventTracing } = {}): EventBus {
  const fanout = new LocalFanout();
  const publishedIds = new LRUCache<string, true>({ max: MEMORY_PUBLISHED_IDS });
  const publish = (event: TidingsEvent) => {
    const topics = topicsOf(event);
    if (options.metrics && topics.some((topic) => fanout.subscriberCount(topic) > 0)) recordArrival(options.metrics, event, 'gateway');
    for (const topic of topics) {
      // A delivery span per topic with subscribers, as each Redis channel gets on its instance.
      const span = options.tracing && fanout.subscriberCount(topic) > 0 ? options.tracing.startDelivery(topic, event.traceparent) : undefined;
      const tally = span?.recording ? newTally() : undefined;
      fanout.deliver(topic, event, tally);
      span?.end(deliveryAttributes(event, fanout.subscriberCount(topic), tally));
    }
  };
  return {
    async publish(event) {
      publish(event);
    },
    async publishMany(events) {
      for (const event of events) publish(event);
      return events.map(() => true);
    },
    async publishOnce(event, windowMs) {
      if (publishedIds.has(event.id)) return false;
      publishedIds.set(event.id, true, { ttl: windowMs });
      publish(event);
      return true;
    },
    subscribe: (topic) => fanout.subscribe(topic),
    listen: (topic, listener, options) => fanout.listen(topic, listener, options),
    activeTopicCount: () => fanout.activeTopicCount(),
    subscriberCount: (topic) => fanout.subscriberCount(topic),
    isReady: () => true,
    async close() {
      fanout.endAll();
    },
  };
}
