import type { EventEnvelope, EventType, TidingsEvent } from '../events/contracts.js';
import type { Topic } from '../events/topics.js';
import type { Listening, TopicListener } from './local-fanout.js';

/**
 * The pub/sub seam between publishers (mutations, built-in chat responder) and subscribers
 * (subscription resolvers). Implemented in memory for a single instance and over Redis for
 * many; both run the same contract tests.
 */
export interface EventBus {
  /** Publishes an already-validated event on every topic it belongs to (see topicsOf). */
  publish(event: TidingsEvent): Promise<void>;
  /**
   * Publishes many already-validated events in one round trip to the backend, in order. Resolves
   * with whether each one was published (an event is published on all of its topics or counted
   * as failed); rejects only when none could be sent at all.
   */
  publishMany(events: readonly TidingsEvent[]): Promise<readonly boolean[]>;
  /**
   * Publishes an event unless one with the same id went out through this method within the last
   * `windowMs`, on any instance sharing the backend. Remembering the id and publishing are one
   * step (a Redis script): a publish that failed leaves no mark, so the event can be tried again.
   * Resolves true when published, false for a duplicate; rejects when the backend is unreachable.
   * For ingress that may deliver a message twice (RabbitMQ redeliveries).
   */
  publishOnce(event: TidingsEvent, windowMs: number): Promise<boolean>;
  /**
   * Streams the events of one topic until the consumer calls `return()`. The backend subscribes
   * to the topic when its first local subscriber arrives and unsubscribes when the last leaves.
   */
  subscribe<T extends EventType>(topic: Topic<T>): AsyncIterableIterator<EventEnvelope<T>>;
  /**
   * The same as a listener run synchronously per event, not counted as a subscriber unless
   * `counted` or through `addSubscribers` (see LocalFanout.listen).
   */
  listen(topic: Topic<EventType>, listener: TopicListener, options?: { counted?: boolean }): Listening;
  /** Number of topics with at least one local subscriber (for readiness, stats and tests). */
  activeTopicCount(): number;
  /** Local subscribers of one topic on this instance. */
  subscriberCount(topic: string): number;
  /** False while the backend cannot deliver (Redis unreachable); drives the readiness endpoint. */
  isReady(): boolean;
  /**
   * Completes every local subscription and lets go of upstream subscriptions. Publishing still
   * works afterwards (in-flight mutations can finish) until the connections themselves close.
   */
  close(): Promise<void>;
}
