import { execute, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import type { TidingsEvent } from '../events/contracts.js';
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
  /** Each member with the function that ends its (passive) stream. */
  readonly members: Map<SharedMember, () => void>;
  readonly stream: AsyncIterableIterator<TidingsEvent>;
}

/**
 * One execution and one serialization per event for every WebSocket subscription of a group,
 * written to each member's socket with only the operation id differing: the per-subscriber cost
 * of a broadcast becomes a string concatenation and a socket write. Each member still goes
 * through the whole subscribe pipeline (authorization, rate limits, quotas, metrics): its own
 * stream is passive, keeps the topic subscribed and ends as usual, and the group leaves it.
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

  const run = async (topicKey: string, group: Group, field: string) => {
    const delivered = deps.metrics.eventsDelivered.labels(field);
    try {
      for await (const event of group.stream) {
        const [first] = group.members.keys();
        if (!first) break;
        const result = await execute({ ...first.args, rootValue: event });
        const payload = frameOf(result);
        const withheld = result.errors?.some(isWithheldField);
        for (const member of group.members.keys()) member.send(`{"id":${member.idJson},"type":"next","payload":${payload}}`);
        delivered.inc(group.members.size);
        if (withheld) deps.metrics.eventsDropped.inc({ reason: 'unauthorized_field', source: field }, group.members.size);
      }
    } catch (error) {
      deps.logger.error({ err: error, group: topicKey }, 'shared delivery failed');
    } finally {
      if (groups.get(topicKey) === group) groups.delete(topicKey);
      // Members must not stay subscribed to a group that no longer delivers: their operations
      // complete (the client may subscribe again and form a new group).
      for (const end of [...group.members.values()]) end();
    }
  };

  const join = (topic: string, member: SharedMember, end: () => void): (() => void) => {
    const topicKey = `${topic}\u0000${member.key}`;
    let group = groups.get(topicKey);
    if (!group) {
      // Not counted: the members are the topic's subscribers; this is their shared executor.
      group = { members: new Map(), stream: deps.bus.subscribe(topic as Topic<'priceUpdated'>, { counted: false }) as AsyncIterableIterator<TidingsEvent> };
      groups.set(topicKey, group);
      void run(topicKey, group, member.field);
    }
    const joined = group;
    joined.members.set(member, end);
    return () => {
      joined.members.delete(member);
      if (joined.members.size > 0) return;
      if (groups.get(topicKey) === joined) groups.delete(topicKey);
      void joined.stream.return?.();
    };
  };

  return {
    handleFor(member: SharedMember): SharedDeliveryHandle {
      return { passiveFor: (topic) => ({ onStart: (end) => join(topic, member, end) }) };
    },
    /** Groups currently delivering (for tests and stats). */
    groupCount: () => groups.size,
  };
}

export type SharedDeliveries = ReturnType<typeof createSharedDeliveries>;
