import { execute, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import type { EventType, TidingsEvent } from '../events/contracts.js';
import { SUBSCRIBER_BUFFER_EVENTS } from '../bus/local-fanout.js';
import type { Topic } from '../events/topics.js';
import { forSocket, isWithheldField } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';

/**
 * Root fields whose results depend only on the operation, its variables and the subscriber's
 * roles (never on who the subscriber is): subscribers that agree on those can share one
 * execution per event. `priceUpdated` qualifies (public, admin-only fields decided by role);
 * conversation, booking, notification and chat streams filter or authorize per user and do not.
 */
export const SHAREABLE_FIELDS: ReadonlySet<string> = new Set(['priceUpdated']);

/** What the subscription resolver asks of a shared member: a passive stream's start hook. */
export interface SharedDeliveryHandle {
  passiveFor(topic: string): { onStart(end: () => void): () => void };
}

export interface SharedMember {
  /** Groups operations that may share a result: document, operation name, variables and roles. */
  readonly key: string;
  /** The member's JSON-encoded operation id, spliced into each frame. */
  readonly idJson: string;
  /** The execution arguments of the member (the first member's serve the whole group). */
  readonly args: ExecutionArgs;
  readonly field: string;
  /** Writes one serialized graphql-ws message to the member's socket. */
  send(frame: string): void;
}

interface Group {
  readonly topicKey: string;
  readonly field: string;
  /** Each member with the function that ends its (passive) stream. */
  readonly members: Map<SharedMember, () => void>;
  /** Ends the group's bus listener. */
  stopListening: () => void;
  /** Events that arrived while an asynchronous execution was running, oldest first. */
  readonly backlog: TidingsEvent[];
  executing: boolean;
}

/**
 * One execution and one serialization per event for every WebSocket subscription of a group,
 * written to each member's socket with only the operation id differing: the per-subscriber cost
 * of a broadcast becomes a string concatenation and a socket write. Each member still goes
 * through the whole subscribe pipeline (authorization, rate limits, quotas, metrics): its own
 * stream is passive, keeps the topic subscribed and ends as usual, and the group leaves it.
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

  const frameOf = (result: ExecutionResult): string => {
    const errors = result.errors?.map((error) => {
      const masked = deps.maskError(error);
      return masked instanceof GraphQLError ? forSocket(masked) : { message: masked.message, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
    });
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
    if (groups.get(group.topicKey) === group) groups.delete(group.topicKey);
    group.stopListening();
    group.backlog.length = 0;
    for (const endMember of [...group.members.values()]) endMember();
  };

  const fail = (group: Group, error: unknown) => {
    deps.logger.error({ err: error, group: group.topicKey }, 'shared delivery failed');
    end(group);
  };

  const deliver = (group: Group, event: TidingsEvent): void => {
    const [first] = group.members.keys();
    if (!first) return;
    try {
      const result = execute({ ...first.args, rootValue: event });
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

  const join = (topic: string, member: SharedMember, endMember: () => void): (() => void) => {
    const topicKey = `${topic}\u0000${member.key}`;
    let group = groups.get(topicKey);
    if (!group) {
      const created: Group = { topicKey, field: member.field, members: new Map(), stopListening: () => undefined, backlog: [], executing: false };
      groups.set(topicKey, created);
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
    joined.members.set(member, endMember);
    return () => {
      joined.members.delete(member);
      if (joined.members.size > 0) return;
      if (groups.get(topicKey) === joined) groups.delete(topicKey);
      joined.stopListening();
    };
  };

  return {
    handleFor(member: SharedMember): SharedDeliveryHandle {
      return { passiveFor: (topic) => ({ onStart: (endMember) => join(topic, member, endMember) }) };
    },
    /** Groups currently delivering (for tests and stats). */
    groupCount: () => groups.size,
  };
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

export type SharedDeliveries = ReturnType<typeof createSharedDeliveries>;
