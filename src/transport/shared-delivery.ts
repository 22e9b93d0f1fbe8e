import { createSourceEventStream, execute, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Logger } from 'pino';
import type { EventBus } from '../bus/event-bus.js';
import type { EventType, TidingsEvent } from '../events/contracts.js';
import { REVOKED, type StreamGuard } from '../bus/guarded-stream.js';
import { SUBSCRIBER_BUFFER_EVENTS, type Listening, type TopicListener } from '../bus/local-fanout.js';
import type { Topic } from '../events/topics.js';
import { ErrorCode, forSocket, isWithheldField, withExtensions } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { Principal } from '../auth/principal.js';
import type { GraphQLContext, SharedDeliveryHandle } from '../schema/context.js';
import { LRUCache } from 'lru-cache';
import { nextFrame } from './graphql-transport-ws.js';

/** Where a member's frames go: its connection's outgoing queue. */
export interface FrameSink {
  send(frame: string): void;
}

/** What a member gives back when it ends (its quota unit, its presence). */
export interface Releasable {
  release(): void;
}

/**
 * What a subscription's root field resolver named: the topic and its stream's guard; or, for a
 * resolver that names none, the event stream it returned, which feeds a group of its own.
 */
export type SharedTopic =
  | { readonly topic: string; readonly guard?: StreamGuard<TidingsEvent> | undefined }
  | { readonly stream: AsyncIterableIterator<unknown> };

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
 * Whether a result may be shared is decided by what the execution reads, not by a list: every
 * execution (the subscribe resolver that names the topic, and each event's) sees the principal
 * through an IdentityWatch, which notes any read of who the subscriber is (user id, token times).
 * A key whose execution read it is grouped per user from then on: a running group splits, each
 * other user's members moving to a group of their own that executes the same event for them, so
 * a per-user rule added to a shareable field can never hand one member's result to another.
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
  /**
   * Member keys whose executions read the subscriber's identity: grouped per user. Bounded: a
   * key forgotten here is found again by the first execution that reads it (and split then).
   */
  // Keys carry the client's variables (up to 4 KB): bounded by their total length, not only count.
  const perUserKeys = new LRUCache<string, true>({ max: 10_000, maxSize: 4 * 1024 * 1024, sizeCalculation: (_value, key) => Math.max(1, key.length) });
  const groupKeyOf = (key: string, userId: string | undefined, perUser = perUserKeys.has(key)): string =>
    userId !== undefined && perUser ? `${key}\u0000user\u0000${userId}` : key;
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
    first: Member | undefined = undefined;
    last: Member | undefined = undefined;
    size = 0;
    ended = false;
    listening: Listening | undefined = undefined;
    /** Events that arrived while an asynchronous execution was running, oldest first. */
    backlog: TidingsEvent[] | undefined = undefined;
    executing = false;
    /** The resolver's own event stream, for a group fed by it rather than by the bus. */
    source: AsyncIterableIterator<unknown> | undefined = undefined;

    /** The arguments each event is executed with, the principal seen through `watch`. */
    readonly args: ExecutionArgs;
    readonly watch: IdentityWatch | undefined;
    /** An event this group was handed directly when it split off, which the bus may hand it again. */
    private handed: TidingsEvent | undefined = undefined;
    /** Ends the guard's revocation watch. */
    private unwatch: (() => void) | undefined = undefined;

    constructor(
      /** The key it is found by: the member key, with the user for a per-user group. */
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
      /** The members' stream guard, named with the topic (see SharedDeliveryHandle): only per-user groups have one. */
      readonly guard: StreamGuard<TidingsEvent> | undefined,
    ) {
      const watched = watchIdentity(args);
      this.args = watched.args;
      this.watch = watched.watch;
    }

    /** Per user: its key names its user (a guarded group's always does); otherwise no execution has read anyone's identity yet. */
    private get perUser(): boolean {
      return this.key !== this.memberKey || this.guard !== undefined;
    }

    onEvent(event: TidingsEvent): void {
      if (event === this.handed) return;
      if (this.guard?.accept && !this.guard.accept(event)) return;
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

    /** Takes the events of the resolver's own stream, then ends the group with it. */
    async pump(source: AsyncIterableIterator<unknown>): Promise<void> {
      try {
        for (let step = await source.next(); !step.done && !this.ended; step = await source.next()) this.onEvent(step.value as TidingsEvent);
      } catch (error) {
        deps.logger.error({ err: error, field: this.field }, 'a subscription event stream failed');
      }
      this.end();
    }

    add(member: Member): void {
      member.group = this;
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
      void this.source?.return?.();
      this.unwatch?.();
      this.unwatch = undefined;
      this.backlog = undefined;
    }

    /**
     * Starts the guard's revocation watch, then asks `stillAllowed` once (a revocation between
     * the subscribe-time authorization and the watch is not missed). Events wait meanwhile, as
     * behind an asynchronous execution, so nothing is delivered before the answer.
     */
    watchRevocation(): void {
      const guard = this.guard;
      if (!guard) return;
      this.unwatch = guard.watchRevocation?.(() => this.revoke());
      if (!guard.stillAllowed) return;
      this.executing = true;
      guard.stillAllowed().then(
        (allowed) => {
          this.executing = false;
          if (!allowed) return this.revoke();
          const backlog = this.backlog;
          while (!this.executing && backlog && backlog.length > 0) this.deliver(backlog.shift()!);
        },
        // Not known to be allowed: treated as not allowed.
        () => {
          this.executing = false;
          this.revoke();
        },
      );
    }

    /** Access was revoked: every member gets the field's revoked result (its resolver given REVOKED), then completes. */
    private revoke(): void {
      if (this.ended) return;
      this.backlog = undefined;
      try {
        const result = execute({ ...this.args, rootValue: REVOKED });
        if (isPromise(result)) {
          result.then(
            (settled) => {
              if (!this.ended) this.write(settled);
              this.end();
            },
            (error: unknown) => this.fail(error),
          );
          return;
        }
        this.write(result);
      } catch (error) {
        this.fail(error);
        return;
      }
      this.end();
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
        member.sink.send(nextFrame(member.idJson, payload));
      }
      deps.metrics.eventsDelivered.labels(this.field).inc(this.size);
      if (result.errors?.some(isWithheldField)) deps.metrics.eventsDropped.inc({ reason: 'unauthorized_field', source: this.field }, this.size);
    }

    /** An execution's result: written to every member, unless it read whose it was (see split). */
    private settle(result: ExecutionResult, event: TidingsEvent): void {
      if (!this.perUser && this.watch?.read) this.split(event);
      this.write(result);
    }

    /**
     * The execution of `event` read the subscriber's identity: its result is for this group's
     * own user only. From now on the member key is grouped per user: this group becomes its
     * user's, and each other user's members move to a group of their own, which executes `event`
     * (and whatever waited behind it here) for them. Runs before the result is written.
     */
    private split(event: TidingsEvent): void {
      perUserKeys.set(this.memberKey, true);
      const ownUser = this.watch?.userId;
      if (byKey.get(this.key) === this) byKey.delete(this.key);
      this.key = groupKeyOf(this.memberKey, ownUser);
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
        const group = startGroup(
          groupKeyOf(this.memberKey, userId),
          this.memberKey,
          this.topic,
          this.field,
          { ...this.args, contextValue: { ...(this.args.contextValue as object), principal: members[0]!.principal } },
          // Only a group without a guard splits (a guard makes its group per user from the start).
          undefined,
        );
        for (const member of members) {
          this.leave(member);
          if (group.ended) member.finish();
          else group.add(member);
        }
        if (group.ended) continue;
        // Listening from now on, it may still be handed `event` by the bus loop that is running.
        group.handed = event;
        group.deliver(event);
        for (const later of waiting) group.onEvent(later);
      }
    }

    private deliver(event: TidingsEvent): void {
      if (this.size === 0) return;
      try {
        if (this.watch) this.watch.read = false;
        const result = execute({ ...this.args, rootValue: event });
        if (!isPromise(result)) {
          this.settle(result, event);
          return;
        }
        // An asynchronous resolver: later events wait, so every member still sees them in order.
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
  const startGroup = (key: string, memberKey: string, topic: string, field: string, args: ExecutionArgs, guard: StreamGuard<TidingsEvent> | undefined): Group => {
    const running = byKey.get(key);
    const group = new Group(key, memberKey, topic, field, args, guard);
    groupCount++;
    // A key names one topic (its variables determine it); should a resolver name another, that
    // group runs beside the first without being found by key.
    if (!running) byKey.set(key, group);
    // Not counted itself: its members are the topic's subscribers (see `add`).
    group.listening = deps.bus.listen(topic as Topic<EventType>, group);
    if (!group.ended) group.watchRevocation();
    return group;
  };

  /** A group of one fed by the stream its member's resolver returned (it named no topic): never found by key, never shared. */
  const startStreamGroup = (member: SharedMember, source: AsyncIterableIterator<unknown>): Group => {
    const group = new Group('\u0000stream', member.key, '', member.field, member.args, undefined);
    groupCount++;
    group.source = source;
    void group.pump(source);
    return group;
  };

  /** The running group for this member's key and topic (its guard is theirs too), or a new one with `guard`. */
  const groupFor = (topic: string, member: SharedMember, guard: StreamGuard<TidingsEvent> | undefined): Group => {
    // A guard is its member's own: its group is per user whatever perUserKeys still remembers.
    const key = groupKeyOf(member.key, userIdOf(member.args), guard !== undefined || perUserKeys.has(member.key));
    const running = byKey.get(key);
    if (running && running.topic === topic) return running;
    return startGroup(key, member.key, topic, member.field, member.args, guard);
  };

  return {
    /**
     * The topic a shareable subscription listens to, named by its root field's own subscribe
     * resolver (graphql's createSourceEventStream: variable coercion, the resolver's argument
     * checks and authorization), or the errors the subscriber gets instead. The resolver's stream
     * is never started: it is dropped.
     */
    async topicOf(member: SharedMember): Promise<SharedTopic | { readonly errors: readonly GraphQLError[] }> {
      let topic: string | undefined;
      let guard: StreamGuard<TidingsEvent> | undefined;
      const naming: SharedDeliveryHandle = {
        nameTopic: (named, namedGuard) => {
          topic = named;
          guard = namedGuard;
        },
      };
      // A copy for this one call: the arguments' own context may go on to execute a group's
      // events, and must not change shape (a deleted property would put it in dictionary mode).
      const watched = watchIdentity(member.args);
      const args = watched.args;
      const contextValue = { ...(args.contextValue as object), sharedDelivery: naming };
      const source = await createSourceEventStream({ ...args, contextValue });
      if (!(Symbol.asyncIterator in source)) {
        // Errors without a path come before the resolver (variable coercion): the caller's input,
        // coded as the pipeline codes them.
        const coded = (error: GraphQLError) =>
          error.path === undefined && error.extensions['code'] === undefined ? withExtensions(error, { ...error.extensions, code: ErrorCode.BadUserInput }) : error;
        return { errors: (source.errors ?? []).map((error) => masked(coded(error))) };
      }
      // A topic (or an authorization) that depends on who subscribes, or a guard (the
      // subscriber's own filter and revocation): grouped per user. Remembered only for a
      // subscription that starts; a refused one makes no group.
      if (watched.watch?.read || guard) perUserKeys.set(member.key, true);
      const stream = source as AsyncIterableIterator<unknown>;
      if (topic === undefined) return { stream };
      // Named: the bus delivers the topic to the group; the resolver's own stream is not needed.
      void stream.return?.();
      return { topic, guard };
    },
    /** The topic of the group running for this member's key, if one is: the member may join it directly. */
    runningTopic: (member: SharedMember): string | undefined => byKey.get(groupKeyOf(member.key, userIdOf(member.args)))?.topic,
    /**
     * Adds an admitted subscriber (rate limit, quota: see SubscriptionAdmission) to the group of
     * its topic and key, starting the group with its `args` if none runs (or, for a resolver that
     * named no topic, a group of its own fed by the resolver's stream). The group writes the
     * member's results to its sink. When the member ends, by the client (`stop`), the group or
     * shutdown, what it holds (`releases`) is given back, in order.
     */
    joinAdmitted(named: SharedTopic, member: SharedMember, releases: readonly Releasable[]): MemberHandle {
      // Only where results go: a member's arguments (its context) are not kept by it.
      const joined = new Member(member.idJson, member.sink, releases, principalOf(member.args));
      const group = 'stream' in named ? startStreamGroup(member, named.stream) : groupFor(named.topic, member, named.guard);
      // The bus refused the listener (it is shutting down) and ended the group at once.
      if (group.ended) joined.finish();
      else group.add(joined);
      return joined;
    },
    /** Groups currently delivering (for tests and stats). */
    groupCount: () => groupCount,
    /** Members open (each admitted without a subscribe pipeline of its own). */
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
 * A member of a group: where its results go, and what it gives back when it ends, from inside
 * (the group ends, or shutdown) or from outside (`stop`: the client completed it, or its
 * connection closed). One object per subscriber, with its links in the group's list.
 */
class Member implements MemberHandle {
  /** Links in the group's list. */
  before: Member | undefined = undefined;
  after: Member | undefined = undefined;
  group: { leave(member: Member): void } | undefined = undefined;
  private ended = false;

  constructor(
    readonly idJson: string,
    readonly sink: FrameSink,
    private readonly releases: readonly Releasable[],
    /** The subscriber (the object its connection holds): a per-user group is started with it. */
    readonly principal: Principal,
  ) {}

  get userId(): string | undefined {
    return this.principal.kind === 'user' ? this.principal.userId : undefined;
  }

  stop(): void {
    this.finish();
  }

  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.group?.leave(this);
    for (const held of this.releases) held.release();
  }
}
