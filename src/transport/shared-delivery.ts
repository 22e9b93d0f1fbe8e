import { GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import type { EventType, TidingsEvent } from '../events/contracts.js';
import { REVOKED, type StreamGuard } from '../bus/guarded-stream.js';
import { SUBSCRIBER_BUFFER_EVENTS, type DeliveryTally, type Listening, type TopicListener } from '../bus/local-fanout.js';
import type { Topic } from '../events/topics.js';
import { isWithheldField, withExtensions } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { Principal } from '../auth/principal.js';
import type { GraphQLContext, SharedDeliveryHandle } from '../schema/context.js';
import { LRUCache } from 'lru-cache';
import { executingRootField } from '../server/executing-root-field.js';
import type { EventExecution } from '../server/event-execution.js';

/**
 * Where a member's results go. A group executes and serializes each event once and hands every
 * member both forms: the result as clients may see it (errors masked), and its JSON.
 */
export interface ResultSink {
  /** `idJson` is the member's own (its operation id as JSON, spliced into a WebSocket frame). */
  next(idJson: string, payloadJson: string, result: ExecutionResult): void;
  /** Its results are counted in the delivery metrics by its transport (an SSE stream's guard), not by the group. */
  readonly countedByTransport?: boolean;
}

/** What a member gives back when it ends (its quota unit, its presence). */
export interface Releasable {
  release(): void;
}

/**
 * What a member holds until it ends, given back in this order: what the pipeline's plugins
 * handed over (holdUntilEnded: the quota unit, presence), then `ended` (its operation's end on
 * the transport).
 */
export interface MemberHolds {
  readonly held?: readonly Releasable[] | undefined;
  readonly ended?: Releasable | undefined;
}

/** What a subscription's root field resolver named: its topic, and the member's guard. */
export interface NamedTopic {
  readonly topic: string;
  readonly guard?: StreamGuard<TidingsEvent> | undefined;
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * The handle a subscribe resolver names its topic to, for one subscribe, and what it named. The
 * stream it hands the resolver to return yields nothing: nobody reads it (the group writes the
 * member's results), and returning it ends nothing but itself.
 */
export class TopicNaming implements SharedDeliveryHandle, AsyncIterableIterator<never> {
  named: NamedTopic | undefined = undefined;
  /** What plugins handed over to be given back when the member ends (holdUntilEnded). */
  held: Releasable[] | undefined = undefined;

  nameTopic(topic: string, guard?: StreamGuard<TidingsEvent>): AsyncIterableIterator<never> {
    this.named = { topic, guard };
    return this;
  }

  holdUntilEnded(held: Releasable): void {
    (this.held ??= []).push(held);
  }

  /** The subscribe did not join (refused, completed meanwhile, or no topic named): gives back what was handed over. */
  releaseHeld(): void {
    const held = this.held;
    this.held = undefined;
    for (const each of held ?? []) each.release();
  }

  next(): Promise<IteratorResult<never>> {
    return Promise.resolve(DONE);
  }

  return(): Promise<IteratorResult<never>> {
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<never> {
    return this;
  }
}

/** Ends a member (its client completed it, or its connection closed). */
export interface MemberHandle {
  stop(): void;
}

export interface SharedMember {
  /**
   * Groups operations that may share a result: document, operation name, variables and roles.
   * Operations that read who the subscriber is are grouped per user besides (see `groupKeyOf`).
   */
  readonly key: string;
  /** The member's JSON-encoded operation id, spliced into each frame. */
  readonly idJson: string;
  /** The member's execution arguments: they execute for the whole group if it starts one. */
  readonly args: ExecutionArgs;
  readonly field: string;
  readonly sink: ResultSink;
}

/**
 * One execution and one serialization per event for every subscription of a group, over
 * WebSocket and SSE: each member's sink gets the same result and JSON (a WebSocket frame differs
 * only by the operation id), so the per-subscriber cost of a broadcast becomes a string
 * concatenation and a socket write.
 *
 * Decided once at subscribe, by the one pipeline: the transport runs the subscribe through Yoga's
 * envelop (parse, validation, context, every plugin's onSubscribe: admission; the root field's
 * authorization and resolver) with a TopicNaming as `context.sharedDelivery`; the resolver names
 * its topic and the member's guard there instead of subscribing to the bus, and the transport
 * joins the member (`join`) to the group of its key (document, operation name, variables, roles:
 * the same outcome; `memberOf`) and that topic. Field-level authorization is decided by each
 * event's one execution, with the roles the key stands for. Per-event hooks of plugins (onNext)
 * do not run: masking and delivery metrics are the group's, once per event.
 *
 * Whether a group's results may be shared is decided by what the execution reads, not by a list:
 * each event's execution sees the principal through an IdentityWatch, which notes any read of
 * who the subscriber is (user id, token times). A key whose per-event execution read it is grouped per
 * user from then on: a running group splits, each other user's members moving to a group of
 * their own that executes the same event for them, so a per-user rule added to a shareable field
 * can never hand one member's result to another. A per-user topic (a user's notifications) makes
 * groups of one user's subscribers anyway; the members of a conversation share one.
 *
 * What is the member's own is applied per member with plain calls: its guard's filter (its own
 * typing is not echoed), its revocation (removed from the conversation: it alone gets the
 * field's revoked result and ends) and the check that closes the gap before its watch.
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
  /** Which subscription fields may share a group (deliveryRulesOf). */
  shareable: ReadonlySet<string>;
  /** Runs a group's selection on an event (graphql-js, or the document compiled once it runs often). */
  execution: EventExecution;
}) {
  /**
   * A short name for each parsed document, for member keys: Yoga's parse cache hands out one
   * document per query text, so the key need not hold the text (a group per hotel would
   * otherwise keep its own copy of it).
   */
  const documentIds = new WeakMap<DocumentNode, string>();
  let documentCount = 0;
  const documentIdOf = (document: DocumentNode): string => {
    let id = documentIds.get(document);
    if (id === undefined) documentIds.set(document, (id = (++documentCount).toString(36)));
    return id;
  };
  /** Numbers the keys of subscriptions that share with no one. */
  let ownKeyCount = 0;
  /** The running group of each group key (groupKeyOf: member key, topic, and the user if per user). */
  const byKey = new Map<string, Group>();
  /**
   * Member keys whose per-event executions read the subscriber's identity: grouped per user.
   * Bounded: a key forgotten here is found again by the first execution that reads it (and split
   * then). Keys carry the client's variables (up to 4 KB): bounded by their total length too.
   */
  const perUserKeys = new LRUCache<string, true>({ max: 10_000, maxSize: 4 * 1024 * 1024, sizeCalculation: (_value, key) => Math.max(1, key.length) });
  const groupKeyOf = (key: string, topic: string, userId: string | undefined, perUser = perUserKeys.has(key)): string =>
    userId !== undefined && perUser ? `${key}\u0000${topic}\u0000user\u0000${userId}` : `${key}\u0000${topic}`;
  let groupCount = 0;
  let memberCount = 0;

  /** What a client may see of an error: coded GraphQL errors as they are, anything else masked. */
  const masked = (error: GraphQLError): GraphQLError => {
    const shown = deps.maskError(error);
    return shown instanceof GraphQLError ? shown : new GraphQLError(shown.message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  };

  /** The result as every client may see it: unexpected errors masked, and no `http` extension (it is not an HTTP response). */
  const shownOf = (result: ExecutionResult): ExecutionResult => {
    const errors = result.errors?.map((error) => withoutHttp(masked(error)));
    return errors ? { ...result, errors } : result;
  };

  /**
   * The subscribers of one topic that agree on document, variables and roles, and the one bus
   * listener that executes each event for all of them. Members are a linked list (no set per
   * group: with a hotel per subscriber, most groups have one member).
   */
  class Group implements TopicListener {
    first: Member | undefined = undefined;
    last: Member | undefined = undefined;
    size = 0;
    ended = false;
    listening: Listening | undefined = undefined;
    /** Events that arrived while an asynchronous execution was running, oldest first. */
    backlog: TidingsEvent[] | undefined = undefined;
    executing = false;

    /** The arguments each event is executed with, the principal seen through `watch`. */
    readonly args: ExecutionArgs;
    readonly watch: IdentityWatch | undefined;
    /** An event this group was handed directly when it split off, which the bus may hand it again. */
    private handed: TidingsEvent | undefined = undefined;

    /** Members with a filter of their own (their guard's `accept`). */
    filtered = 0;
    /** Its key names its user; otherwise no execution has read anyone's identity yet. */
    private perUser: boolean;

    constructor(
      /** The key it is found by (groupKeyOf): member key and topic, with the user for a per-user group. */
      public key: string,
      /** The members' key (document, operation name, variables, roles). */
      readonly memberKey: string,
      readonly topic: string,
      readonly field: string,
      /**
       * The arguments of the member that started the group. They stay after it leaves: as long as
       * no execution reads who the subscriber is, what they carry of that member (its lean
       * context) makes no difference to the results.
       */
      args: ExecutionArgs,
    ) {
      const watched = watchIdentity(args);
      this.args = watched.args;
      this.watch = watched.watch;
      this.perUser = key !== groupKeyOf(memberKey, topic, undefined);
    }

    onEvent(event: TidingsEvent, tally?: DeliveryTally): void {
      if (event === this.handed) return;
      // Members' own filters are applied as each result is written (once per member and event).
      if (!this.executing) return this.deliver(event, tally);
      if (tally) tally.deferred += this.size;
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

    add(member: Member): void {
      member.group = this;
      if (member.guard?.accept) this.filtered++;
      member.after = undefined;
      member.before = this.last;
      if (this.last) this.last.after = member;
      else this.first = member;
      this.last = member;
      this.size++;
      memberCount++;
      // Counted like a subscriber with a bus stream of its own, through the group's listener.
      this.listening?.addSubscribers(1);
    }

    leave(member: Member): void {
      if (member.group !== this) return;
      member.group = undefined;
      if (member.guard?.accept) this.filtered--;
      if (member.before) member.before.after = member.after;
      else this.first = member.after;
      if (member.after) member.after.before = member.before;
      else this.last = member.before;
      // Unlinked for good: a member may move to another group (a split), and must take no link along.
      member.before = member.after = undefined;
      this.size--;
      memberCount--;
      this.listening?.addSubscribers(-1);
      if (this.size === 0 && !this.ended) this.stop();
    }

    /** Stops a group for good; its members' operations complete (clients may subscribe again). */
    end(): void {
      if (this.ended) return;
      this.stop();
      const members: Member[] = [];
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

    /** A member lost access: it alone gets the field's revoked result (its resolver given REVOKED), then ends. */
    revoke(member: Member): void {
      if (member.group !== this) return;
      try {
        const result = deps.execution.run(this.args, REVOKED);
        if (isPromise(result)) {
          result.then(
            (settled) => {
              if (member.group === this) member.revoked(shownOf(settled));
              member.finish();
            },
            (error: unknown) => {
              deps.logger.error({ err: error, topic: this.topic }, 'a revoked result failed');
              member.finish();
            },
          );
          return;
        }
        member.revoked(shownOf(result));
      } catch (error) {
        deps.logger.error({ err: error, topic: this.topic }, 'a revoked result failed');
      }
      member.finish();
    }

    private fail(error: unknown): void {
      deps.logger.error({ err: error, topic: this.topic }, 'shared delivery failed');
      this.end();
    }

    /** The result of `event` to every member that takes it. */
    private write(result: ExecutionResult, event: TidingsEvent, tally?: DeliveryTally): void {
      const shown = shownOf(result);
      const payload = JSON.stringify(shown);
      let written = 0;
      let reached = 0;
      // A send never ends a member synchronously, but take the link first anyway.
      for (let member = this.first, after; member; member = after) {
        after = member.after;
        if (this.filtered > 0 && !member.accepts(event)) {
          if (tally) tally.filtered++;
          continue;
        }
        member.write(payload, shown);
        reached++;
        if (!member.sink.countedByTransport) written++;
      }
      deps.metrics.countDelivered(this.field, written);
      const withheld = result.errors?.some(isWithheldField) ?? false;
      if (withheld) deps.metrics.eventsDropped.inc({ reason: 'unauthorized_field', source: this.field }, written);
      if (tally) {
        tally.reached += reached;
        if (withheld) tally.withheld += reached;
      }
    }

    /** An execution's result: written to every member, unless it read whose it was (see split). */
    private settle(result: ExecutionResult, event: TidingsEvent, tally?: DeliveryTally): void {
      // Its last member left while an asynchronous execution ran: nobody to write to, and a split
      // would put an ended group back under a key where it would end every newcomer at once.
      if (this.ended) return;
      if (!this.perUser && this.watch?.read) this.split(event, tally);
      this.write(result, event, tally);
    }

    /**
     * The execution of `event` read the subscriber's identity: its result is for this group's
     * own user only. From now on the member key is grouped per user: this group becomes its
     * user's, and each other user's members move to a group of their own, which executes `event`
     * (and whatever waited behind it here) for them. Runs before the result is written.
     */
    private split(event: TidingsEvent, tally?: DeliveryTally): void {
      perUserKeys.set(this.memberKey, true);
      const ownUser = this.watch?.userId;
      if (byKey.get(this.key) === this) byKey.delete(this.key);
      this.key = groupKeyOf(this.memberKey, this.topic, ownUser);
      this.perUser = true;
      if (!byKey.has(this.key)) byKey.set(this.key, this);
      const others = new Map<string, Member[]>();
      for (let member = this.first; member; member = member.after) {
        if (member.userId === ownUser || member.userId === undefined) continue;
        const list = others.get(member.userId) ?? [];
        list.push(member);
        others.set(member.userId, list);
      }
      const waiting = this.backlog ?? [];
      for (const [userId, members] of others) {
        const group = startGroup(groupKeyOf(this.memberKey, this.topic, userId), this.memberKey, this.topic, this.field, {
          ...this.args,
          contextValue: { ...(this.args.contextValue as object), principal: members[0]!.principal },
        });
        for (const member of members) {
          this.leave(member);
          if (group.ended) member.finish();
          else group.add(member);
        }
        // Only the members' frames move; their guards' watches call `member.group`, whichever it is.
        if (group.ended) continue;
        // Listening from now on, it may still be handed `event` by the bus loop that is running.
        group.handed = event;
        group.deliver(event, tally);
        for (const later of waiting) group.onEvent(later);
      }
    }

    private deliver(event: TidingsEvent, tally?: DeliveryTally): void {
      if (this.size === 0) return;
      try {
        if (this.watch) this.watch.read = false;
        const result = deps.execution.run(this.args, event);
        if (!isPromise(result)) {
          this.settle(result, event, tally);
          return;
        }
        // An asynchronous resolver: later events wait, so every member still sees them in order.
        if (tally) tally.deferred += this.size;
        this.executing = true;
        result.then(
          (settled) => {
            this.executing = false;
            try {
              this.settle(settled, event);
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

  /** A new group listening on the bus (ended at once if the bus is shutting down). */
  const startGroup = (key: string, memberKey: string, topic: string, field: string, args: ExecutionArgs): Group => {
    const group = new Group(key, memberKey, topic, field, args);
    groupCount++;
    byKey.set(key, group);
    // Not counted itself: its members are the topic's subscribers (see `add`).
    group.listening = deps.bus.listen(topic as Topic<EventType>, group);
    return group;
  };

  /** The running group for this member's key and topic (and its user, if per user), or a new one. */
  const groupFor = (topic: string, member: SharedMember): Group => {
    const key = groupKeyOf(member.key, topic, userIdOf(member.args));
    return byKey.get(key) ?? startGroup(key, member.key, topic, member.field, member.args);
  };

  return {
    /**
     * A subscription as a member of some group, from its validated operation (its context is the
     * subscriber's), or undefined when the field that will execute cannot be told. Only a
     * shareable field's subscribers, with variables worth keying on, may share a group (same
     * document, operation name, variables and roles: the same outcome); any other subscription
     * gets a group of its own, under a key no one else has.
     */
    memberOf(args: ExecutionArgs, idJson: string, sink: ResultSink): SharedMember | undefined {
      // The field that will execute, not the first one written: with @skip, @include and
      // fragments they differ, and shareability follows the one that runs.
      const field = executingRootField(args.schema, args.document, args.operationName, args.variableValues);
      if (!field) return undefined;
      const context = args.contextValue as GraphQLContext;
      const principal = context.principal;
      const roles = principal.kind === 'user' ? [...principal.roles].sort().join(',') : 'anonymous';
      const variables = deps.shareable.has(field) ? variablesKey(args.variableValues) : undefined;
      const key = variables === undefined ? `\u0000own\u0000${(++ownKeyCount).toString(36)}` : `${roles}\u0000${args.operationName ?? ''}\u0000${variables}\u0000${documentIdOf(args.document)}`;
      return {
        key,
        idJson,
        // What the root field's resolver and, if this member starts its group, every event
        // execute with: only what subscription resolvers and authorization read, so an open
        // group keeps no operation's context (nor its connection or request) alive.
        args: {
          schema: args.schema,
          document: args.document,
          operationName: args.operationName,
          variableValues: args.variableValues,
          contextValue: { principal, services: context.services, transport: context.transport, log: context.services.logger } satisfies GraphQLContext,
        },
        field,
        sink,
      };
    },
    /**
     * What a subscribe resolver names its topic to (`handle`, set as the subscription's
     * `context.sharedDelivery`), and what it named once the subscribe has run through the
     * pipeline: the topic and the member's guard, or nothing (the resolver opened a stream of
     * its own, which then runs as it is).
     */
    naming: (): TopicNaming => new TopicNaming(),
    /**
     * Adds a subscriber, admitted by the pipeline (its subscribe ran through Yoga's envelop), to
     * the group of its key and the topic its resolver named, starting the group with its `args`
     * if none runs. The group writes the member's results to its sink. When the member ends, by
     * the client (`stop`), the group or shutdown, what it holds is given back.
     */
    join(named: NamedTopic, member: SharedMember, holds: MemberHolds): MemberHandle {
      // Only where results go: a member's arguments (its context) are not kept by it.
      const joined = new Member(member.idJson, member.sink, holds, principalOf(member.args), named.guard);
      const group = groupFor(named.topic, member);
      // The bus refused the listener (it is shutting down) and ended the group at once.
      if (group.ended) joined.finish();
      else {
        group.add(joined);
        joined.watchRevocation();
      }
      return joined;
    },
    /** Groups currently delivering (for tests and stats). */
    groupCount: () => groupCount,
    /** Members open. */
    joinedCount: () => memberCount,
  };
}

function principalOf(args: ExecutionArgs): Principal {
  return (args.contextValue as GraphQLContext).principal;
}

function userIdOf(args: ExecutionArgs): string | undefined {
  const principal = principalOf(args);
  return principal.kind === 'user' ? principal.userId : undefined;
}

type UserPrincipal = Extract<Principal, { kind: 'user' }>;

/**
 * A user principal as an execution sees it, noting whether the execution read who the
 * subscriber is: the user id or the token's times. Its roles may be read freely (they are part
 * of the member key).
 */
class IdentityWatch implements UserPrincipal {
  readonly kind = 'user';
  read = false;

  constructor(private readonly principal: UserPrincipal) {}

  get roles(): UserPrincipal['roles'] {
    return this.principal.roles;
  }

  get userId(): string {
    this.read = true;
    return this.principal.userId;
  }

  get expiresAt(): number | undefined {
    this.read = true;
    return this.principal.expiresAt;
  }

  get issuedAt(): number | undefined {
    this.read = true;
    return this.principal.issuedAt;
  }
}

/** The arguments with their principal seen through an IdentityWatch (anonymous callers have no identity to read). */
function watchIdentity(args: ExecutionArgs): { readonly args: ExecutionArgs; readonly watch: (IdentityWatch & { userId: string }) | undefined } {
  const context = args.contextValue as GraphQLContext;
  if (context.principal.kind !== 'user') return { args, watch: undefined };
  const watch = new IdentityWatch(context.principal);
  return { args: { ...args, contextValue: { ...context, principal: watch } }, watch };
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

export type SharedDeliveries = ReturnType<typeof createSharedDeliveries>;

/**
 * A member of a group: where its results go, its guard, and what it gives back when it ends,
 * from inside (the group ends, its access was revoked, or shutdown) or from outside (`stop`: the
 * client completed it, or its connection closed). One object per subscriber, with its links in
 * the group's list.
 */
class Member implements MemberHandle {
  /** Links in the group's list. */
  before: Member | undefined = undefined;
  after: Member | undefined = undefined;
  group: { leave(member: Member): void; revoke(member: Member): void } | undefined = undefined;
  /** Results held until `stillAllowed` answers (nothing is delivered before it): JSON, then the result. */
  private held: Array<string | ExecutionResult> | undefined = undefined;
  private unwatch: (() => void) | undefined = undefined;
  private ended = false;
  // What it holds, as fields: an array or a closure of them would be kept per subscriber.
  private readonly kept: readonly Releasable[] | undefined;
  private readonly onEnded: Releasable | undefined;

  constructor(
    readonly idJson: string,
    readonly sink: ResultSink,
    holds: MemberHolds,
    /** The subscriber (the object its connection holds): a per-user group is started with it. */
    readonly principal: Principal,
    /** Its own filter and revocation, named with the topic (see SharedDeliveryHandle). */
    readonly guard: StreamGuard<TidingsEvent> | undefined,
  ) {
    this.kept = holds.held;
    this.onEnded = holds.ended;
  }

  get userId(): string | undefined {
    return this.principal.kind === 'user' ? this.principal.userId : undefined;
  }

  accepts(event: TidingsEvent): boolean {
    return !this.guard?.accept || this.guard.accept(event);
  }

  write(payloadJson: string, result: ExecutionResult): void {
    const held = this.held;
    if (!held) return this.sink.next(this.idJson, payloadJson, result);
    if (held.length >= 2 * SUBSCRIBER_BUFFER_EVENTS) held.splice(0, 2);
    held.push(payloadJson, result);
  }

  /** Its access was revoked: the field's revoked result, whatever was held (the group ends it next). */
  revoked(result: ExecutionResult): void {
    this.held = undefined;
    this.sink.next(this.idJson, JSON.stringify(result), result);
  }

  /**
   * Starts the guard's revocation watch, then asks `stillAllowed` once (a revocation between the
   * subscribe-time authorization and the watch is not missed); frames wait meanwhile.
   */
  watchRevocation(): void {
    const guard = this.guard;
    if (!guard) return;
    this.unwatch = guard.watchRevocation?.(() => this.group?.revoke(this));
    if (!guard.stillAllowed || this.ended) return;
    this.held = [];
    guard.stillAllowed().then(
      (allowed) => this.allowed(allowed),
      // Not known to be allowed: treated as not allowed.
      () => this.allowed(false),
    );
  }

  private allowed(allowed: boolean): void {
    const held = this.held ?? [];
    this.held = undefined;
    if (!allowed) return this.group?.revoke(this);
    for (let index = 0; index < held.length; index += 2) this.sink.next(this.idJson, held[index] as string, held[index + 1] as ExecutionResult);
  }

  stop(): void {
    this.finish();
  }

  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.held = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
    this.group?.leave(this);
    for (const each of this.kept ?? []) each.release();
    this.onEnded?.release();
  }
}

/** Yoga's `http` extension is for an HTTP response's status; it means nothing in a stream's result. */
function withoutHttp(error: GraphQLError): GraphQLError {
  if (error.extensions['http'] === undefined) return error;
  const { http: _http, ...extensions } = error.extensions;
  return withExtensions(error, extensions);
}

/**
 * The variables as part of a member key, or undefined when they are not worth sharing on: too
 * big or too deep to serialize (they will fail coercion anyway and get BAD_USER_INPUT).
 */
function variablesKey(variables: Readonly<Record<string, unknown>> | null | undefined): string | undefined {
  try {
    const key = JSON.stringify(variables ?? {});
    return key.length <= 4_096 ? key : undefined;
  } catch {
    return undefined;
  }
}
