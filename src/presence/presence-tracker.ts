import type { Logger } from 'pino';
import { PresenceBatchError, splitScope, type PresenceHold, type PresenceScope, type PresenceStore } from './presence-store.js';

export type PresenceChangeKind = 'JOINED' | 'LEFT';

export interface PresenceChange {
  readonly userId: string;
  readonly change: PresenceChangeKind;
  /** Epoch milliseconds of the change as this instance saw it. */
  readonly at: number;
}

/** Given back when a hold or watch ends; idempotent. */
export interface PresenceLease {
  release(): void;
}

export interface PresenceTrackerOptions {
  readonly store: PresenceStore;
  /** A user whose last local hold of a scope ended counts as present this long more: a quick reconnect shows no LEFT/JOINED. */
  readonly graceMs: number;
  /** Changes of one scope within this interval go out as one announcement. */
  readonly coalesceMs: number;
  /** How often this instance's holds are refreshed in the store (a fraction of the store's TTL). */
  readonly heartbeatMs: number;
  /** How often the watched scopes are swept for entries of instances that died. */
  readonly sweepMs: number;
  /** Announces a scope's coalesced changes to every instance (through the event bus). */
  readonly announce: (scope: PresenceScope, changes: readonly PresenceChange[]) => Promise<void>;
  /** The most changes one announcement may carry (the event contract's bound); more go out in several. */
  readonly maxChangesPerAnnouncement?: number;
  readonly logger: Logger;
  /** Told of each announcement (for the metrics). */
  readonly onAnnounced?: (scope: PresenceScope, changes: readonly PresenceChange[]) => void;
  /** Told of each failed store call (for the metrics). */
  readonly onStoreError?: () => void;
  readonly now?: () => number;
}

interface LocalHold {
  count: number;
  /** Set while in its grace period after the last local hold ended. */
  leaving: NodeJS.Timeout | undefined;
}

/** How long a failed announcement waits before it is tried again. */
const ANNOUNCE_RETRY_MS = 1_000;

/**
 * This instance's side of presence: counts its local holds (a connection, a subscription to a
 * conversation) per scope and user, and tells the store only when the first one starts or, after
 * the grace period, the last one ends, so many tabs are one presence and a reconnect is none.
 * What the store reports as a change (a user present for the first time on any instance, or on
 * none any more) is coalesced per scope and announced once per interval: a burst of joins is one
 * message per scope, not one per join. The heartbeat keeps this instance's entries alive (and
 * rebuilds them after the store lost them); the sweep announces the users of instances that died.
 *
 * Store failures (Redis away) are logged once per outage and never reach the caller: the
 * heartbeat re-creates what could not be written, and tries again the releases that could not be
 * (a user who left during an outage is announced LEFT once the store answers, also when it lost
 * every entry meanwhile, as after a Redis restart).
 */
export class PresenceTracker {
  private readonly holds = new Map<PresenceScope, Map<string, LocalHold>>();
  private readonly watched = new Map<PresenceScope, number>();
  /** Each user's latest change waiting to be announced, by scope. */
  private readonly pending = new Map<PresenceScope, Map<string, PresenceChange>>();
  /** Users whose last local hold ended but whose release the store did not take: retried by the heartbeat. */
  private readonly unreleased = new Map<PresenceScope, Set<string>>();
  private flushTimer: NodeJS.Timeout | undefined = undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly sweeper: NodeJS.Timeout;
  private failing = false;
  /** An announcement failed and is being retried (logged once until one goes out). */
  private announcing = false;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly options: PresenceTrackerOptions) {
    this.now = options.now ?? Date.now;
    this.heartbeat = setInterval(() => this.refresh(), options.heartbeatMs);
    this.heartbeat.unref();
    this.sweeper = setInterval(() => this.sweep(), options.sweepMs);
    this.sweeper.unref();
  }

  /** A local hold of `userId` in `scope` (a connection, a subscription), until released. */
  hold(scope: PresenceScope, userId: string): PresenceLease {
    let users = this.holds.get(scope);
    if (!users) this.holds.set(scope, (users = new Map()));
    let local = users.get(userId);
    if (!local) users.set(userId, (local = { count: 0, leaving: undefined }));
    local.count += 1;
    if (local.count === 1) {
      if (local.leaving) {
        // Back within the grace period: never left.
        clearTimeout(local.leaving);
        local.leaving = undefined;
      } else {
        // Held again: a release still to retry is moot (the hold and the heartbeat keep the entry).
        this.forgetUnreleased(scope, userId);
        this.storeCall(this.options.store.hold(scope, userId), (became) => became && this.changed(scope, userId, 'JOINED'));
      }
    }
    const held = local;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        held.count -= 1;
        if (held.count > 0 || this.closed) return;
        held.leaving = setTimeout(() => this.left(scope, userId, held), this.options.graceMs);
        held.leaving.unref();
      },
    };
  }

  /** This instance has subscribers to the scope's changes: it sweeps the scope for instances that died. */
  watch(scope: PresenceScope): PresenceLease {
    this.watched.set(scope, (this.watched.get(scope) ?? 0) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const count = (this.watched.get(scope) ?? 1) - 1;
        if (count > 0) this.watched.set(scope, count);
        else this.watched.delete(scope);
      },
    };
  }

  /** Who is present in the scope now, on any instance. */
  present(scope: PresenceScope): Promise<string[]> {
    return this.options.store.present(scope);
  }

  /** Of these users, who is online now. */
  online(userIds: readonly string[]): Promise<Set<string>> {
    return this.options.store.online(userIds);
  }

  /** What this instance holds, by scope kind: (user, conversation) pairs, and users online through it. */
  heldCounts(): { conversation: number; user: number; watchedScopes: number } {
    let conversation = 0;
    let user = 0;
    for (const [scope, users] of this.holds) {
      if (scope.startsWith('user:')) user += users.size;
      else conversation += users.size;
    }
    return { conversation, user, watchedScopes: this.watched.size };
  }

  /**
   * A graceful stop (a deploy): this instance's entries are handed over, to expire within the
   * grace period rather than the TTL. Its users reconnect to other instances within it and stay
   * present, with no LEFT and JOINED flicker; the surviving instances' sweeps announce the LEFT of
   * those who do not come back (within grace + TTL/6 + the coalescing interval). Changes still
   * waiting are announced; a release still to retry is tried once more. Publishing works while the
   * gateway shuts down.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    clearInterval(this.sweeper);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const holds: PresenceHold[] = [];
    for (const [scope, users] of this.holds) {
      for (const [userId, local] of users) {
        clearTimeout(local.leaving);
        holds.push({ scope, userId });
      }
    }
    this.holds.clear();
    const at = this.now();
    const retries = this.takeUnreleased();
    await Promise.all([
      // Should Redis not answer, the entries expire after the TTL instead.
      this.options.store.handOver(holds, this.options.graceMs).catch(() => this.options.onStoreError?.()),
      ...retries.map(({ scope, userId }) =>
        this.options.store.release(scope, userId).then(
          (gone) => void (gone && this.queue(scope, { userId, change: 'LEFT', at })),
          () => this.options.onStoreError?.(),
        ),
      ),
    ]);
    await this.flush();
  }

  private left(scope: PresenceScope, userId: string, local: LocalHold): void {
    local.leaving = undefined;
    const users = this.holds.get(scope);
    if (local.count > 0 || users?.get(userId) !== local) return;
    users.delete(userId);
    if (users.size === 0) this.holds.delete(scope);
    this.release(scope, userId);
  }

  /**
   * Lets go of a user no local hold keeps any more; when the store cannot be told, the heartbeat
   * tries again. A release that finds no entry of this instance (the store lost them, or
   * took the first release but its answer was lost) announces LEFT when the user is present
   * nowhere: whoever watched through the outage must not show them forever. Such a LEFT may repeat
   * one that another instance's sweep already announced; subscribers drop a LEFT of someone they do
   * not show.
   */
  private release(scope: PresenceScope, userId: string, retry = false): void {
    const again = () => {
      if (this.closed || this.holds.get(scope)?.has(userId)) return;
      let users = this.unreleased.get(scope);
      if (!users) this.unreleased.set(scope, (users = new Set()));
      users.add(userId);
    };
    this.storeCall(
      this.options.store.release(scope, userId),
      (gone) => {
        if (gone) return this.changed(scope, userId, 'LEFT');
        // Another instance still holds them; or this instance's entry is gone (the store lost it,
        // or a first try took effect): then whether they are present anywhere decides.
        if (gone === false && !retry) return;
        const store = this.options.store;
        const stillPresent = splitScope(scope)[0] === 'user' ? store.online([userId]).then((online) => online.has(userId)) : store.present(scope).then((users) => users.includes(userId));
        stillPresent.then((present) => !present && !this.holds.get(scope)?.has(userId) && this.changed(scope, userId, 'LEFT'), again);
      },
      again,
    );
  }

  private forgetUnreleased(scope: PresenceScope, userId: string): void {
    const users = this.unreleased.get(scope);
    if (users?.delete(userId) && users.size === 0) this.unreleased.delete(scope);
  }

  /** The releases still to retry, no longer remembered. */
  private takeUnreleased(): PresenceHold[] {
    const retries = [...this.unreleased].flatMap(([scope, users]) => [...users].map((userId) => ({ scope, userId })));
    this.unreleased.clear();
    return retries;
  }

  private refresh(): void {
    for (const { scope, userId } of this.takeUnreleased()) if (!this.holds.get(scope)?.has(userId)) this.release(scope, userId, true);
    const all: PresenceHold[] = [];
    for (const [scope, users] of this.holds) for (const userId of users.keys()) all.push({ scope, userId });
    if (all.length === 0) return;
    const stillHeld = ({ scope, userId }: PresenceHold) => this.holds.get(scope)?.has(userId) === true;
    this.storeCall(this.options.store.refresh(all), (back) => {
      for (const hold of back) if (stillHeld(hold)) this.changed(hold.scope, hold.userId, 'JOINED');
      // A hold let go while the refresh was on its way (batches go one after the other) may have
      // been written again after its release: let go of it once more.
      for (const hold of all) if (!stillHeld(hold)) this.release(hold.scope, hold.userId);
    });
  }

  private sweep(): void {
    if (this.watched.size === 0) return;
    this.storeCall(this.options.store.sweep([...this.watched.keys()]), (gone) => {
      for (const { scope, userId } of gone) this.changed(scope, userId, 'LEFT');
    });
  }

  /** Runs a store call in the background: `then` with its value, `failed` as well when it fails. */
  private storeCall<T>(call: Promise<T>, then: (value: T) => unknown, failed?: () => void): void {
    call.then(
      (value) => {
        if (this.failing) this.options.logger.info('presence store reachable again');
        this.failing = false;
        then(value);
      },
      (error: unknown) => {
        // Part of a batch took effect: what it reported happened, and is announced.
        if (error instanceof PresenceBatchError) then(error.completed as T);
        this.options.onStoreError?.();
        failed?.();
        if (!this.failing) this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'presence store unreachable; the heartbeat will rebuild presence');
        this.failing = true;
      },
    );
  }

  /**
   * Queues a change for its scope's next announcement, which carries each user's latest change
   * only: a subscriber whose view already agrees drops it (a LEFT of someone it never showed), one
   * that read its snapshot between the two changes needs it.
   */
  private changed(scope: PresenceScope, userId: string, change: PresenceChangeKind): void {
    if (this.closed) return;
    this.queue(scope, { userId, change, at: this.now() });
    this.flushTimer ??= setTimeout(() => void this.flush(), this.options.coalesceMs);
  }

  /** Queues `entry` as its user's latest change; `unlessQueued`: only if none is waiting (a retry is never newer). */
  private queue(scope: PresenceScope, entry: PresenceChange, unlessQueued = false): void {
    let changes = this.pending.get(scope);
    if (!changes) this.pending.set(scope, (changes = new Map()));
    if (!unlessQueued || !changes.has(entry.userId)) changes.set(entry.userId, entry);
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const pending = [...this.pending];
    this.pending.clear();
    const announcements: Array<Promise<void>> = [];
    for (const [scope, changes] of pending) {
      const net = [...changes.values()];
      const most = this.options.maxChangesPerAnnouncement ?? net.length;
      for (let start = 0; start < net.length; start += most) {
        const part = net.slice(start, start + most);
        announcements.push(
          this.options.announce(scope, part).then(
            () => {
              this.announcing = false;
              this.options.onAnnounced?.(scope, part);
            },
            (error: unknown) => this.announceLater(scope, part, error),
          ),
        );
      }
    }
    await Promise.all(announcements);
  }

  /**
   * An announcement that could not be published (Redis away) is tried again, the changes not
   * superseded meanwhile by a later one of the same user, until it goes out or this instance
   * stops: a lost LEFT would show a user present for good. Bounded: one pending change per user
   * and scope.
   */
  private announceLater(scope: PresenceScope, changes: readonly PresenceChange[], error: unknown): void {
    if (!this.announcing) this.options.logger.warn({ err: error instanceof Error ? error.message : String(error), scope }, 'presence changes could not be announced; trying again');
    this.announcing = true;
    if (this.closed) return;
    for (const change of changes) this.queue(scope, change, true);
    this.flushTimer ??= setTimeout(() => void this.flush(), Math.max(this.options.coalesceMs, ANNOUNCE_RETRY_MS));
  }
}
