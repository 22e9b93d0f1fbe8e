import { Repeater, SlidingBuffer } from 'graphql-yoga';
import type { EventEnvelope, EventType, TidingsEvent } from '../events/contracts.js';
import type { Topic } from '../events/topics.js';

/** How many undelivered events one subscriber may lag behind before the oldest are dropped. */
export const SUBSCRIBER_BUFFER_EVENTS = 1_000;

export interface FanoutHooks {
  /**
   * The first local subscriber of a topic arrived. Synchronous on purpose: the backend starts its
   * upstream subscription and handles its own failures; local subscribers are attached already.
   */
  onTopicActive?(topic: string): void;
  /** The last local subscriber of a topic left. Synchronous too: a subscriber's cleanup never waits on the backend. */
  onTopicIdle?(topic: string): void;
}

/**
 * The per-instance registry of who listens to which topic. Every bus delivers through it, so an
 * event is handled once per instance and then handed to each local subscriber's queue.
 */
export class LocalFanout {
  private readonly listeners = new Map<string, Set<(event: TidingsEvent) => void>>();
  /** Per topic: every local subscription (drives upstream activity) and the counted ones. */
  private readonly members = new Map<string, { all: number; counted: number }>();
  /** How to end each live subscriber's stream, for shutdown. */
  private readonly stops = new Set<() => void>();
  /** Set by endAll(): a shutting-down instance takes no new subscribers. */
  private closed = false;

  constructor(private readonly hooks: FanoutHooks = {}) {}

  deliver(topic: string, event: TidingsEvent): void {
    const topicListeners = this.listeners.get(topic);
    if (!topicListeners) return;
    for (const listener of topicListeners) listener(event);
  }

  /** Completes every subscriber's stream and refuses new ones (shutdown); topics go idle as they end. */
  endAll(): void {
    this.closed = true;
    for (const end of [...this.stops]) end();
  }

  subscriberCount(topic: string): number {
    return this.members.get(topic)?.counted ?? 0;
  }

  activeTopicCount(): number {
    return this.members.size;
  }

  /** Whether the topic has any local subscription (counted or not). */
  isActive(topic: string): boolean {
    return this.members.has(topic);
  }

  activeTopics(): IterableIterator<string> {
    return this.members.keys();
  }

  /** Topics are typed, and every bus only delivers events whose topicsOf() include the topic. */
  subscribe<T extends EventType>(topic: Topic<T>): AsyncIterableIterator<EventEnvelope<T>> {
    if (this.closed) return new Repeater<EventEnvelope<T>>((_push, stop) => stop());
    // A sliding buffer keeps the newest events for a subscriber that falls far behind instead of
    // growing without bound; the Repeater's push never blocks the publisher.
    return new Repeater<EventEnvelope<T>>(async (push, stop) => {
      const leave = this.join(
        topic,
        true,
        (event) => void push(event as EventEnvelope<T>),
        () => stop(),
      );
      try {
        await stop;
      } finally {
        leave();
      }
    }, new SlidingBuffer(SUBSCRIBER_BUFFER_EVENTS));
  }

  /**
   * A subscription as a callback rather than a stream: the listener runs synchronously for each
   * event, in order. For the shared executor of a group of subscribers, which needs neither a
   * buffer nor an async hop per event (no listener: it only holds the topic, see `hold`). Returns
   * what ends it; `onEnd` runs if it is ended from here instead (shutdown).
   */
  listen(topic: string, listener: ((event: TidingsEvent) => void) | undefined, options: { counted?: boolean; onEnd(): void }): () => void {
    if (this.closed) {
      options.onEnd();
      return () => undefined;
    }
    let ended = false;
    const leave = this.join(
      topic,
      options.counted ?? true,
      listener,
      () => {
        if (ended) return;
        ended = true;
        leave();
        options.onEnd();
      },
    );
    return () => {
      if (ended) return;
      ended = true;
      leave();
    };
  }

  /**
   * A counted subscriber without a stream or listener: a shared delivery's member admitted
   * without a pipeline of its own keeps the topic subscribed and counted. `end` runs if it is
   * ended from here (shutdown); returns what ends it.
   */
  hold(topic: string, end: () => void): () => void {
    return this.listen(topic, undefined, { onEnd: end });
  }

  /** Registers one local subscription of a topic; returns what undoes it. */
  private join(
    topic: string,
    counted: boolean,
    listener: ((event: TidingsEvent) => void) | undefined,
    end: () => void,
  ): () => void {
    const topicMembers = this.members.get(topic) ?? { all: 0, counted: 0 };
    const isFirst = topicMembers.all === 0;
    topicMembers.all++;
    if (counted) topicMembers.counted++;
    this.members.set(topic, topicMembers);
    let topicListeners: Set<(event: TidingsEvent) => void> | undefined;
    if (listener) {
      topicListeners = this.listeners.get(topic);
      if (!topicListeners) this.listeners.set(topic, (topicListeners = new Set()));
      topicListeners.add(listener);
    }
    this.stops.add(end);
    if (isFirst) this.hooks.onTopicActive?.(topic);
    return () => {
      this.stops.delete(end);
      if (topicListeners && listener) {
        topicListeners.delete(listener);
        if (topicListeners.size === 0 && this.listeners.get(topic) === topicListeners) this.listeners.delete(topic);
      }
      topicMembers.all--;
      if (counted) topicMembers.counted--;
      if (topicMembers.all === 0 && this.members.get(topic) === topicMembers) {
        this.members.delete(topic);
        this.hooks.onTopicIdle?.(topic);
      }
    };
  }
}
