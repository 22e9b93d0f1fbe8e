import type { TidingsEvent } from '../events/contracts.js';
import { topicsOf } from '../events/topics.js';
import { recordArrival, type GatewayMetrics } from '../metrics/metrics.js';
import type { EventBus } from './event-bus.js';
import { LocalFanout } from './local-fanout.js';

/** Single-instance pub/sub: publishing hands the event straight to local subscribers. */
export function createMemoryEventBus(options: { metrics?: GatewayMetrics } = {}): EventBus {
  const fanout = new LocalFanout();
  const publish = (event: TidingsEvent) => {
    const topics = topicsOf(event);
    if (options.metrics && topics.some((topic) => fanout.subscriberCount(topic) > 0)) recordArrival(options.metrics, event, 'gateway');
    for (const topic of topics) fanout.deliver(topic, event);
  };
  return {
    async publish(event) {
      publish(event);
    },
    async publishMany(events) {
      for (const event of events) publish(event);
      return events.map(() => true);
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
