import { topicsOf } from '../events/topics.js';
import type { EventBus } from './event-bus.js';
import { LocalFanout } from './local-fanout.js';

/** Single-instance pub/sub: publishing hands the event straight to local subscribers. */
export function createMemoryEventBus(): EventBus {
  const fanout = new LocalFanout();
  return {
    async publish(event) {
      for (const topic of topicsOf(event)) fanout.deliver(topic, event);
    },
    subscribe: (topic) => fanout.subscribe(topic),
    activeTopicCount: () => fanout.activeTopicCount(),
    subscriberCount: (topic) => fanout.subscriberCount(topic),
    isReady: () => true,
    async close() {
      fanout.endAll();
    },
  };
}
