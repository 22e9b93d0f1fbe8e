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
/** How one local subscription takes part in a topic. */
export interface FanoutSubscribeOptions {
  /** Counted in subscriberCount (default). The shared executor of a group of subscribers is not. */
  readonly counted?: boolean;
  /**
   * A member of a shared delivery: it keeps the topic subscribed and is counted, but receives no
   * events itself (its group delivers them). `onStart` runs when the stream starts and returns
   * what to do when it ends.
   */
  readonly passive?: { onStart(end: () => void): () => void };
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
  subscribe<T extends EventType>(topic: Topic<T>, options: FanoutSubscribeOptions = {}): AsyncIterableIterator<EventEnvelope<T>> {
    if (this.closed) return new Repeater<EventEnvelope<T>>((_push, stop) => stop());
    const counted = options.counted ?? true;
    const passive = options.passive;
    // A shared delivery's member receives nothing itself: a bare iterator that only waits for its
    // end, instead of a Repeater and buffer per subscriber (thousands may share one topic).
    if (passive) return new PassiveStream<EventEnvelope<T>>((end) => this.join(topic, counted, undefined, end, passive));
    // A sliding buffer keeps the newest events for a subscriber that falls far behind instead of
    // growing without bound; the Repeater's push never blocks the publisher.
    return new Repeater<EventEnvelope<T>>(async (push, stop) => {
      const leave = this.join(
        topic,
        counted,
        (event) => void push(event as EventEnvelope<T>),
        () => stop(),
        undefined,
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
   * buffer nor an async hop per event. Returns what ends it; `onEnd` runs if it is ended from
   * here instead (shutdown).
   */
  listen(topic: string, listener: (event: TidingsEvent) => void, options: { counted?: boolean; onEnd(): void }): () => void {
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
      undefined,
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
    if (this.closed) {
      end();
      return () => undefined;
    }
    return this.join(topic, true, undefined, end, undefined);
  }

  /** Registers one local subscription of a topic; returns what undoes it. */
  private join(
    topic: string,
    counted: boolean,
    listener: ((event: TidingsEvent) => void) | undefined,
    end: () => void,
    passive: FanoutSubscribeOptions['passive'],
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
    const leavePassive = passive?.onStart(end);
    this.stops.add(end);
    if (isFirst) this.hooks.onTopicActive?.(topic);
    return () => {
      this.stops.delete(end);
      leavePassive?.();
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

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * A stream that yields nothing and completes when ended: from inside (`end`, passed to `begin`)
 * or by its consumer (`return`). Starts on the first `next()`, like a Repeater, or on `start()`.
 */
export class PassiveStream<T> implements AsyncIterableIterator<T> {
  private started = false;
  private ended = false;
  private completion: Promise<IteratorResult<T>> | undefined;
  private complete: ((result: IteratorResult<T>) => void) | undefined;
  private leave: (() => void) | undefined;

  /** Dropped once started, with whatever it holds. */
  private begin: ((end: () => void) => () => void) | undefined;

  constructor(begin: (end: () => void) => () => void) {
    this.begin = begin;
  }

  /** Starts now instead of on the first `next()`. */
  start(): void {
    const begin = this.begin;
    if (this.started || this.ended || !begin) return;
    this.started = true;
    this.begin = undefined;
    const leave = begin(() => this.finish());
    // Ended while starting (the instance is shutting down): undo the start at once.
    if (this.ended) leave();
    else this.leave = leave;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.ended) return Promise.resolve(DONE);
    this.completion ??= new Promise((resolve) => (this.complete = resolve));
    this.start();
    return this.completion;
  }

  return(): Promise<IteratorResult<T>> {
    this.finish();
    return Promise.resolve(DONE);
  }

  throw(error: unknown): Promise<IteratorResult<T>> {
    this.finish();
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.begin = undefined;
    const leave = this.leave;
    this.leave = undefined;
    leave?.();
    this.complete?.(DONE);
  }
}
