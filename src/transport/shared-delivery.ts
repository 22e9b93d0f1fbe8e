import { createSourceEventStream, execute, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import type { EventType, TidingsEvent } from '../events/contracts.js';
import { SUBSCRIBER_BUFFER_EVENTS, type Listening, type TopicListener } from '../bus/local-fanout.js';
import type { Topic } from '../events/topics.js';
import { ErrorCode, forSocket, isWithheldField, withExtensions } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { SharedDeliveryHandle } from '../schema/context.js';
import { executingRootField } from '../server/executing-root-field.js';

/** Where a member's frames go: its connection's outgoing queue. */
export interface FrameSink {
  send(frame: string): void;
}

/** What a member gives back when it ends (its quota unit, its presence). */
export interface Releasable {
  release(): void;
}

export interface SharedMember {
  /** Groups operations that may share a result: document, operation name, variables and roles. */
  readonly key: string;
  /** The member's JSON-encoded operation id, spliced into each frame. */
  readonly idJson: string;
  /** The member's execution arguments: they execute for the whole group if it starts one. */
  readonly args: ExecutionArgs;
  readonly field: string;
  readonly sink: FrameSink;
}

/**
 * One execution and one serialization per event for every WebSocket subscription of a group,
 * written to each member's socket with only the operation id differing: the per-subscriber cost
 * of a broadcast becomes a string concatenation and a socket write.
 *
 * Members have no subscribe pipeline of their own either. The transport validates the operation
 * and builds its context as for any other, checks the subscriber's own rate limit and quota
 * (SubscriptionAdmission: the plugins' checks), and joins it with `joinAdmitted`. The topic is
 * that of the running group with the same key (document, operation name, variables, roles: the
 * same validation, resolver and authorization outcome) or, for the first subscriber, the one the
 * root field's own subscribe resolver names (`topicOf`). Field-level authorization is decided by
 * each event's one execution, with the roles the key stands for.
 *
 * The group listens on the bus with a callback and executes synchronously when the resolvers are
 * synchronous (they are for priceUpdated): no stream, buffer or promise per group or per event.
 */
export function createSharedDeliveries(deps: {
  bus: EventBus;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Turns an unexpected error into the masked one clients see (and logs it). */
  maskError: (error: GraphQLError) => Error;
}) {
  /** The running group of each key (a key's variables determine its topic). */
  const byKey = new Map<string, Group>();
  let groupCount = 0;
  let memberCount = 0;

  /** What a client may see of an error: coded GraphQL errors as they are, anything else masked. */
  const masked = (error: GraphQLError): GraphQLError => {
    const shown = deps.maskError(error);
    return shown instanceof GraphQLError ? shown : new GraphQLError(shown.message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  };

  const frameOf = (result: ExecutionResult): string => {
    const errors = result.errors?.map((error) => forSocket(masked(error)));
    return JSON.stringify(errors ? { ...result, errors } : result);
  };

  /**
   * The subscribers of one topic that agree on document, variables and roles, and the one bus
   * listener that executes each event for all of them. Members are a linked list (no set per
   * group: with a hotel per subscriber, most groups have one member).
   */
  class Group implements TopicListener {
    first: MemberStream | undefined = undefined;
    last: MemberStream | undefined = undefined;
    size = 0;
    ended = false;
    listening: Listening | undefined = undefined;
    /** Events that arrived while an asynchronous execution was running, oldest first. */
    backlog: TidingsEvent[] | undefined = undefined;
    executing = false;

    constructor(
      readonly key: string,
      readonly topic: string,
      readonly field: string,
      /**
       * The arguments each event is executed with: those of the member that started the group.
       * They stay after it leaves; what they carry that is its own (its lean context) is not used
       * by the resolvers of a shareable field, which depend only on the operation, variables and
       * roles.
       */
      readonly args: ExecutionArgs,
    ) {}

    onEvent(event: TidingsEvent): void {
      if (!this.executing) return this.deliver(event);
      const backlog = (this.backlog ??= []);
      if (backlog.length >= SUBSCRIBER_BUFFER_EVENTS) {
        backlog.shift();
        deps.metrics.eventsDropped.inc({ reason: 'slow_consumer', source: this.field });
      }
      backlog.push(event);
    }

    /** The bus ended the group (shutdown). */
    onEnd(): void {
      this.end();
    }

    add(member: MemberStream): void {
      member.group = this;
      member.before = this.last;
      if (this.last) this.last.after = member;
      else this.first = member;
      this.last = member;
      this.size++;
      memberCount++;
      // Counted like a subscriber with a bus stream of its own, through the group's listener.
      this.listening?.addSubscribers(1);
    }

    leave(member: MemberStream): void {
      if (member.group !== this) return;
      member.group = undefined;
      if (member.before) member.before.after = member.after;
      else this.first = member.after;
      if (member.after) member.after.before = member.before;
      else this.last = member.before;
      this.size--;
      memberCount--;
      this.listening?.addSubscribers(-1);
      if (this.size === 0 && !this.ended) this.stop();
    }

    /** Stops a group for good; its members' operations complete (clients may subscribe again). */
    end(): void {
      if (this.ended) return;
      this.stop();
      const members: MemberStream[] = [];
      for (let member = this.first; member; member = member.after) members.push(member);
      for (const member of members) member.finish();
    }

    private stop(): void {
      this.ended = true;
      if (byKey.get(this.key) === this) byKey.delete(this.key);
      groupCount--;
      this.listening?.stop();
      this.backlog = undefined;
    }

    private fail(error: unknown): void {
      deps.logger.error({ err: error, topic: this.topic }, 'shared delivery failed');
      this.end();
    }

    private write(result: ExecutionResult): void {
      const payload = frameOf(result);
      // A send never ends a member synchronously, but take the link first anyway.
      for (let member = this.first, after; member; member = after) {
        after = member.after;
        member.sink.send(`{"id":${member.idJson},"type":"next","payload":${payload}}`);
      }
      deps.metrics.eventsDelivered.labels(this.field).inc(this.size);
      if (result.errors?.some(isWithheldField)) deps.metrics.eventsDropped.inc({ reason: 'unauthorized_field', source: this.field }, this.size);
    }

    private deliver(event: TidingsEvent): void {
      if (this.size === 0) return;
      try {
        const result = execute({ ...this.args, rootValue: event });
        if (!isPromise(result)) {
          this.write(result);
          return;
        }
        // An asynchronous resolver: later events wait, so every member still sees them in order.
        this.executing = true;
        result.then(
          (settled) => {
            this.executing = false;
            try {
              this.write(settled);
            } catch (error) {
              // Thrown here it would be an unhandled rejection.
              this.fail(error);
              return;
            }
            const backlog = this.backlog;
            while (!this.executing && backlog && backlog.length > 0) this.deliver(backlog.shift()!);
          },
          (error: unknown) => this.fail(error),
        );
      } catch (error) {
        this.fail(error);
      }
    }
  }

  /** The running group for this member's key and topic, or a new one (ended at once if the bus is shutting down). */
  const groupFor = (topic: string, member: SharedMember): Group => {
    const running = byKey.get(member.key);
    if (running && running.topic === topic) return running;
    const group = new Group(member.key, topic, member.field, member.args);
    groupCount++;
    // A key names one topic (its variables determine it); should a resolver name another, that
    // group runs beside the first without being found by key.
    if (!running) byKey.set(member.key, group);
    // Not counted itself: its members are the topic's subscribers (see `add`).
    group.listening = deps.bus.listen(topic as Topic<EventType>, group);
    return group;
  };

  return {
    /**
     * The topic a shareable subscription listens to, named by its root field's own subscribe
     * resolver (graphql's createSourceEventStream: variable coercion, the resolver's argument
     * checks and authorization), or the errors the subscriber gets instead. The resolver's stream
     * is never started: it is dropped.
     */
    async topicOf(args: ExecutionArgs): Promise<{ readonly topic: string } | { readonly errors: readonly GraphQLError[] }> {
      let topic: string | undefined;
      const naming: SharedDeliveryHandle = { nameTopic: (named) => void (topic = named) };
      // A copy for this one call: the arguments' own context may go on to execute a group's
      // events, and must not change shape (a deleted property would put it in dictionary mode).
      const contextValue = { ...(args.contextValue as object), sharedDelivery: naming };
      const source = await createSourceEventStream({ ...args, contextValue });
      if (!(Symbol.asyncIterator in source)) {
        // Errors without a path come before the resolver (variable coercion): the caller's input,
        // coded as the pipeline codes them.
        const coded = (error: GraphQLError) =>
          error.path === undefined && error.extensions['code'] === undefined ? withExtensions(error, { ...error.extensions, code: ErrorCode.BadUserInput }) : error;
        return { errors: (source.errors ?? []).map((error) => masked(coded(error))) };
      }
      void (source as AsyncIterableIterator<unknown>).return?.();
      if (topic !== undefined) return { topic };
      // Only a shareable field reaches here (see executingRootField): this is our bug, not the client's.
      deps.logger.error({ field: executingRootField(args.schema, args.document, args.operationName, args.variableValues) }, 'a shareable field did not name its topic');
      return { errors: [new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })] };
    },
    /** The topic of the group running for `key`, if one is: a subscriber with that key may join it directly. */
    runningTopic: (key: string): string | undefined => byKey.get(key)?.topic,
    /**
     * Adds an admitted subscriber (rate limit, quota: see SubscriptionAdmission) to the group of
     * `topic` and its key, starting the group with its `args` if none runs. Returns the member's
     * stream for graphql-ws: it yields nothing (the group writes the member's results) and
     * completes when the member ends, by the client, its socket, the group or shutdown; what
     * admission took (`releases`) is then given back.
     */
    joinAdmitted(topic: string, member: SharedMember, releases: readonly Releasable[]): AsyncIterableIterator<never> {
      // Only where results go: a member's arguments (its context) are not kept by the stream.
      const stream = new MemberStream(member.idJson, member.sink, releases);
      const group = groupFor(topic, member);
      // The bus refused the listener (it is shutting down) and ended the group at once.
      if (group.ended) stream.finish();
      else group.add(stream);
      return stream;
    },
    /** Groups currently delivering (for tests and stats). */
    groupCount: () => groupCount,
    /** Members open (each admitted without a subscribe pipeline of its own). */
    joinedCount: () => memberCount,
  };
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

export type SharedDeliveries = ReturnType<typeof createSharedDeliveries>;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * A member of a group, and its stream for graphql-ws: it yields nothing and completes when the
 * member ends, from inside (the group ends, or shutdown) or by its consumer (`return`: the client
 * completed, or the socket closed). One object per subscriber, with its links in the group's list.
 */
class MemberStream implements AsyncIterableIterator<never> {
  /** Links in the group's list (`next` is the iterator's). */
  before: MemberStream | undefined = undefined;
  after: MemberStream | undefined = undefined;
  group: { leave(member: MemberStream): void } | undefined = undefined;
  private ended = false;
  private completion: Promise<IteratorResult<never>> | undefined = undefined;
  private complete: ((result: IteratorResult<never>) => void) | undefined = undefined;

  constructor(
    readonly idJson: string,
    readonly sink: FrameSink,
    private readonly releases: readonly Releasable[],
  ) {}

  next(): Promise<IteratorResult<never>> {
    if (this.ended) return Promise.resolve(DONE);
    return (this.completion ??= new Promise((resolve) => (this.complete = resolve)));
  }

  return(): Promise<IteratorResult<never>> {
    this.finish();
    return Promise.resolve(DONE);
  }

  throw(error: unknown): Promise<IteratorResult<never>> {
    this.finish();
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<never> {
    return this;
  }

  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.group?.leave(this);
    for (const held of this.releases) held.release();
    this.complete?.(DONE);
  }
}
