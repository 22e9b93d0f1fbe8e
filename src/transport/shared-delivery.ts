import { createSourceEventStream, execute, getOperationAST, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import type { EventType, TidingsEvent } from '../events/contracts.js';
import { SUBSCRIBER_BUFFER_EVENTS } from '../bus/local-fanout.js';
import type { Topic } from '../events/topics.js';
import { ErrorCode, forSocket, isWithheldField, withExtensions } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';

/**
 * Root fields whose results depend only on the operation, its variables and the subscriber's
 * roles (never on who the subscriber is): subscribers that agree on those can share one
 * execution per event. `priceUpdated` qualifies (public, admin-only fields decided by role);
 * conversation, booking, notification and chat streams filter or authorize per user and do not.
 * A shareable field's subscribe resolver must report its topic through `context.sharedDelivery`
 * when it is set (see `topicOf`).
 */
export const SHAREABLE_FIELDS: ReadonlySet<string> = new Set(['priceUpdated']);

/**
 * What a shareable field's subscribe resolver reports its topic to, in place of a stream of its
 * own (see `topicOf`).
 */
export interface SharedDeliveryHandle {
  nameTopic(topic: string): void;
}

/** Where a member's results go. */
export interface GroupMember {
  /** The member's JSON-encoded operation id, spliced into each frame. */
  readonly idJson: string;
  /** Writes one serialized graphql-ws message to the member's socket. */
  send(frame: string): void;
}

export interface SharedMember extends GroupMember {
  /** Groups operations that may share a result: document, operation name, variables and roles. */
  readonly key: string;
  /** The member's execution arguments: they execute for the whole group if it starts one. */
  readonly args: ExecutionArgs;
  readonly field: string;
}

interface Group {
  readonly key: string;
  readonly topic: string;
  readonly topicKey: string;
  readonly field: string;
  /**
   * The arguments each event is executed with: those of the member that started the group. They
   * stay after it leaves; what they carry that is its own (its context) is not used by the
   * resolvers of a shareable field, which depend only on the operation, variables and roles.
   */
  readonly args: ExecutionArgs;
  /** Each member with the function that ends its stream. */
  readonly members: Map<GroupMember, () => void>;
  /** Ends the group's bus listener. */
  stopListening: () => void;
  /** Events that arrived while an asynchronous execution was running, oldest first. */
  readonly backlog: TidingsEvent[];
  executing: boolean;
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
  const groups = new Map<string, Group>();
  let memberCount = 0;
  /** The running group of each key (a key's variables determine its topic). */
  const byKey = new Map<string, Group>();
  const forget = (group: Group) => {
    if (groups.get(group.topicKey) === group) groups.delete(group.topicKey);
    if (byKey.get(group.key) === group) byKey.delete(group.key);
  };

  /** What a client may see of an error: coded GraphQL errors as they are, anything else masked. */
  const masked = (error: GraphQLError): GraphQLError => {
    const shown = deps.maskError(error);
    return shown instanceof GraphQLError ? shown : new GraphQLError(shown.message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  };

  const frameOf = (result: ExecutionResult): string => {
    const errors = result.errors?.map((error) => forSocket(masked(error)));
    return JSON.stringify(errors ? { ...result, errors } : result);
  };

  const write = (group: Group, result: ExecutionResult) => {
    const payload = frameOf(result);
    for (const member of group.members.keys()) member.send(`{"id":${member.idJson},"type":"next","payload":${payload}}`);
    deps.metrics.eventsDelivered.labels(group.field).inc(group.members.size);
    if (result.errors?.some(isWithheldField)) deps.metrics.eventsDropped.inc({ reason: 'unauthorized_field', source: group.field }, group.members.size);
  };

  /** Stops a group for good; its members' operations complete (clients may subscribe again). */
  const end = (group: Group) => {
    forget(group);
    group.stopListening();
    group.backlog.length = 0;
    for (const endMember of [...group.members.values()]) endMember();
  };

  const fail = (group: Group, error: unknown) => {
    deps.logger.error({ err: error, group: group.topicKey }, 'shared delivery failed');
    end(group);
  };

  const deliver = (group: Group, event: TidingsEvent): void => {
    if (group.members.size === 0) return;
    try {
      const result = execute({ ...group.args, rootValue: event });
      if (!isPromise(result)) {
        write(group, result);
        return;
      }
      // An asynchronous resolver: later events wait, so every member still sees them in order.
      group.executing = true;
      result.then(
        (settled) => {
          group.executing = false;
          try {
            write(group, settled);
          } catch (error) {
            // Thrown here it would be an unhandled rejection.
            fail(group, error);
            return;
          }
          while (!group.executing && group.backlog.length > 0) deliver(group, group.backlog.shift()!);
        },
        (error: unknown) => fail(group, error),
      );
    } catch (error) {
      fail(group, error);
    }
  };

  /** Adds a member to the group of its topic and key, starting one if none runs; returns its leave. */
  const join = (topic: string, member: SharedMember, endMember: () => void): (() => void) => {
    const topicKey = `${topic}\u0000${member.key}`;
    let group = groups.get(topicKey);
    if (!group) {
      const created: Group = {
        key: member.key,
        topic,
        topicKey,
        field: member.field,
        args: member.args,
        members: new Map(),
        stopListening: () => undefined,
        backlog: [],
        executing: false,
      };
      groups.set(topicKey, created);
      byKey.set(member.key, created);
      // Not counted: the members are the topic's subscribers; this is their shared executor.
      created.stopListening = deps.bus.listen(
        topic as Topic<EventType>,
        (event) => {
          if (!created.executing) return deliver(created, event);
          if (created.backlog.length >= SUBSCRIBER_BUFFER_EVENTS) {
            created.backlog.shift();
            deps.metrics.eventsDropped.inc({ reason: 'slow_consumer', source: created.field });
          }
          created.backlog.push(event);
        },
        { counted: false, onEnd: () => end(created) },
      );
      group = created;
    }
    const joined = group;
    if (groups.get(topicKey) !== joined) {
      // The bus refused the listener (it is shutting down) and ended the group at once.
      endMember();
      return () => undefined;
    }
    // Only where results go: a member's arguments (its context) are not kept by the group.
    const record: GroupMember = { idJson: member.idJson, send: member.send };
    joined.members.set(record, endMember);
    return () => leave(joined, record);
  };

  const leave = (group: Group, member: GroupMember) => {
    group.members.delete(member);
    if (group.members.size > 0) return;
    forget(group);
    group.stopListening();
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
      deps.logger.error({ field: rootFieldOf(args) }, 'a shareable field did not name its topic');
      return { errors: [masked(new GraphQLError('A shareable field did not name its topic.'))] };
    },
    /** The topic of the group running for `key`, if one is: a subscriber with that key may join it directly. */
    runningTopic: (key: string): string | undefined => byKey.get(key)?.topic,
    /**
     * Adds an admitted subscriber (rate limit, quota: see SubscriptionAdmission) to the group of
     * `topic` and its key, starting the group with its `args` if none runs. Returns the member's
     * stream for graphql-ws: it yields nothing (the group writes the member's results) and
     * completes when the member ends, by the client, its socket, the group or shutdown; `onEnd`
     * then gives back what admission took.
     */
    joinAdmitted(topic: string, member: SharedMember, onEnd: () => void): AsyncIterableIterator<never> {
      return new MemberStream((endMember) => {
        // Counted and keeping the topic subscribed like a member with its own bus stream.
        const release = deps.bus.hold(topic as Topic<EventType>, endMember);
        const leaveGroup = join(topic, member, endMember);
        memberCount++;
        return () => {
          memberCount--;
          leaveGroup();
          release();
          onEnd();
        };
      });
    },
    /** Groups currently delivering (for tests and stats). */
    groupCount: () => groups.size,
    /** Members open (each admitted without a subscribe pipeline of its own). */
    joinedCount: () => memberCount,
  };
}

function rootFieldOf(args: ExecutionArgs): string | undefined {
  const selection = getOperationAST(args.document, args.operationName)?.selectionSet.selections[0];
  return selection?.kind === 'Field' ? selection.name.value : undefined;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

export type SharedDeliveries = ReturnType<typeof createSharedDeliveries>;

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * A member's stream for graphql-ws: it yields nothing and completes when the member ends, from
 * inside (the group or shutdown call the `end` passed to `begin`) or by its consumer (`return`:
 * the client completed, or the socket closed). `begin` runs at once and returns what undoes it.
 */
class MemberStream implements AsyncIterableIterator<never> {
  private ended = false;
  private completion: Promise<IteratorResult<never>> | undefined;
  private complete: ((result: IteratorResult<never>) => void) | undefined;
  private leave: (() => void) | undefined;

  constructor(begin: (end: () => void) => () => void) {
    const leave = begin(() => this.finish());
    // Ended while beginning (the instance is shutting down): undo it at once.
    if (this.ended) leave();
    else this.leave = leave;
  }

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

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    const leave = this.leave;
    this.leave = undefined;
    leave?.();
    this.complete?.(DONE);
  }
}
