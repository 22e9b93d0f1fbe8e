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
 * A subscriber that is not a stream: the shared executor of a group of subscribers, which needs
 * neither a buffer nor an async hop per event.
 */
/**
 * What one event's hand-off did on this instance, for its delivery span: the listeners add to it
 * synchronously, while `deliver` runs (only when the span is recorded; otherwise undefined).
 * Results that come later (an asynchronous execution, a backlog) are `deferred`, not followed.
 */
export interface DeliveryTally {
  /** Subscribers a result was written to. */
  reached: number;
  /** Subscribers that do not take this event (their own typing, removed from the conversation). */
  filtered: number;
  /** Of `reached`, those whose result has a field withheld from them. */
  withheld: number;
  /** Subscribers whose result is still being executed or waits behind an earlier one. */
  deferred: number;
}

/** A fresh count for one event's traced hand-off. */
export const newTally = (): DeliveryTally => ({ reached: 0, filtered: 0, withheld: 0, deferred: 0 });

export interface TopicListener {
  /** Each event of the topic, synchronously and in order; `tally` when its delivery is traced. */
  onEvent(event: TidingsEvent, tally?: DeliveryTally): void;
  /** The bus ended this listener (shutdown); not called after `stop()`. */
  onEnd(): void;
}

/** A listener's registration. */
export interface Listening {
  /** Ends it (idempotent); `onEnd` is not called. */
  stop(): void;
  /**
   * Changes how many subscribers this listener counts for (see `subscriberCount`): a group's
   * members are counted through their executor, with no registration of their own.
   */
  addSubscribers(delta: number): void;
}

/** One topic's local subscriptions: a list in arrival order and the counts. */
class TopicState {
  first: Entry | undefined = undefined;
  last: Entry | undefined = undefined;
  /** Entries, counted or not: the topic is active while there is one. */
  entries = 0;
  /** Subscribers: counted entries, plus what listeners count for. */
  subscribers = 0;
}

/**
 * One local subscription: an object rather than a set of closures, and a link in its topic's
 * list rather than a member of a set per topic (a topic with one subscriber is common: a hotel
 * watched by one user, a user's own notifications).
 */
class Entry implements Listening {
  previous: Entry | undefined = undefined;
  next: Entry | undefined = undefined;
  stopped = false;
  counts: number;

  constructor(
    private readonly fanout: LocalFanout,
    readonly topic: string,
    readonly state: TopicState,
    readonly listener: TopicListener,
    counted: boolean,
  ) {
    this.counts = counted ? 1 : 0;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.fanout.remove(this);
  }

  addSubscribers(delta: number): void {
    if (this.stopped) return;
    this.counts += delta;
    this.state.subscribers += delta;
  }
}

/**
 * The per-instance registry of who listens to which topic. Every bus delivers through it, so an
 * event is handled once per instance and then handed to each local subscriber.
 */
export class LocalFanout {
  private readonly topics = new Map<string, TopicState>();
  /** Set by endAll(): a shutting-down instance takes no new subscribers. */
  private closed = false;

  constructor(private readonly hooks: FanoutHooks = {}) {}

  deliver(topic: string, event: TidingsEvent, tally?: DeliveryTally): void {
    // Entries stopped during the loop keep their `next`, so it goes on past them; they are skipped.
    for (let entry = this.topics.get(topic)?.first; entry; entry = entry.next) {
      if (!entry.stopped) entry.listener.onEvent(event, tally);
    }
  }

  /** Ends every subscriber and refuses new ones (shutdown); topics go idle as they end. */
  endAll(): void {
    this.closed = true;
    const entries: Entry[] = [];
    for (const state of this.topics.values()) for (let entry = state.first; entry; entry = entry.next) entries.push(entry);
    for (const entry of entries) {
      if (entry.stopped) continue;
      entry.stop();
      entry.listener.onEnd();
    }
  }

  subscriberCount(topic: string): number {
    return this.topics.get(topic)?.subscribers ?? 0;
  }

  activeTopicCount(): number {
    return this.topics.size;
  }

  /** Whether the topic has any local subscription (counted or not). */
  isActive(topic: string): boolean {
    return this.topics.has(topic);
  }

  /** Topics are typed, and every bus only delivers events whose topicsOf() include the topic. */
  subscribe<T extends EventType>(topic: Topic<T>): AsyncIterableIterator<EventEnvelope<T>> {
    if (this.closed) return new Repeater<EventEnvelope<T>>((_push, stop) => stop());
    // A sliding buffer keeps the newest events for a subscriber that falls far behind instead of
    // growing without bound; the Repeater's push never blocks the publisher.
    return new Repeater<EventEnvelope<T>>(async (push, stop) => {
      const onEvent = (event: TidingsEvent, tally?: DeliveryTally) => {
        // Handed to the stream's buffer: what its consumer does with it is its own.
        if (tally) tally.reached++;
        void push(event as EventEnvelope<T>);
      };
      const listening = this.listen(topic, { onEvent, onEnd: () => stop() }, { counted: true });
      try {
        await stop;
      } finally {
        listening.stop();
      }
    }, new SlidingBuffer(SUBSCRIBER_BUFFER_EVENTS));
  }

  /**
   * A subscription as a listener rather than a stream: `onEvent` runs synchronously for each
   * event, in order; `onEnd` if it is ended from here instead (shutdown). Not counted as a
   * subscriber unless `counted` (or through `addSubscribers`).
   */
  listen(topic: string, listener: TopicListener, options: { counted?: boolean } = {}): Listening {
    if (this.closed) {
      listener.onEnd();
      return STOPPED;
    }
    let state = this.topics.get(topic);
    const isFirst = !state;
    if (!state) this.topics.set(topic, (state = new TopicState()));
    const entry = new Entry(this, topic, state, listener, options.counted ?? false);
    entry.previous = state.last;
    if (state.last) state.last.next = entry;
    else state.first = entry;
    state.last = entry;
    state.entries++;
    state.subscribers += entry.counts;
    if (isFirst) this.hooks.onTopicActive?.(topic);
    return entry;
  }

  /** @internal Entry.stop. */
  remove(entry: Entry): void {
    const state = entry.state;
    if (entry.previous) entry.previous.next = entry.next;
    else state.first = entry.next;
    if (entry.next) entry.next.previous = entry.previous;
    else state.last = entry.previous;
    state.entries--;
    state.subscribers -= entry.counts;
    if (state.entries === 0 && this.topics.get(entry.topic) === state) {
      this.topics.delete(entry.topic);
      this.hooks.onTopicIdle?.(entry.topic);
    }
  }
}

const STOPPED: Listening = { stop: () => undefined, addSubscribers: () => undefined };
