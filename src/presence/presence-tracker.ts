import type { Logger } from 'pino';
import { PresenceBatchError, type PresenceHold, type PresenceScope, type PresenceStore } from './presence-store.js';

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

/** A change waiting to be announced, and the state its scope had before the first one. */
interface PendingChange {
  readonly before: PresenceChangeKind;
  last: PresenceChange;
}

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
 * heartbeat re-creates what could not be written.
 */
export class PresenceTracker {
  private readonly holds = new Map<PresenceScope, Map<string, LocalHold>>();
  private readonly watched = new Map<PresenceScope, number>();
  private readonly pending = new Map<PresenceScope, Map<string, PendingChange>>();
  private flushTimer: NodeJS.Timeout | undefined = undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly sweeper: NodeJS.Timeout;
  private failing = false;
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
   * A goodbye: lets go of every hold in the store and announces, at once, the users present
   * nowhere any more (with the changes still waiting), so other instances need not wait for the
   * TTL. Publishing works while the gateway shuts down.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    clearInterval(this.sweeper);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const releases: Array<Promise<void>> = [];
    const at = this.now();
    for (const [scope, users] of this.holds) {
      for (const [userId, local] of users) {
        clearTimeout(local.leaving);
        releases.push(
          this.options.store.release(scope, userId).then(
            (gone) => void (gone && this.queue(scope, { userId, change: 'LEFT', at })),
            () => undefined,
          ),
        );
      }
    }
    this.holds.clear();
    await Promise.all(releases);
    await this.flush();
  }

  private left(scope: PresenceScope, userId: string, local: LocalHold): void {
    local.leaving = undefined;
    const users = this.holds.get(scope);
    if (local.count > 0 || users?.get(userId) !== local) return;
    users.delete(userId);
    if (users.size === 0) this.holds.delete(scope);
    this.storeCall(this.options.store.release(scope, userId), (gone) => gone && this.changed(scope, userId, 'LEFT'));
  }

  private refresh(): void {
    const all: PresenceHold[] = [];
    for (const [scope, users] of this.holds) for (const userId of users.keys()) all.push({ scope, userId });
    if (all.length === 0) return;
    this.storeCall(this.options.store.refresh(all), (back) => {
      for (const { scope, userId } of back) this.changed(scope, userId, 'JOINED');
    });
  }

  private sweep(): void {
    if (this.watched.size === 0) return;
    this.storeCall(this.options.store.sweep([...this.watched.keys()]), (gone) => {
      for (const { scope, userId } of gone) this.changed(scope, userId, 'LEFT');
    });
  }

  private storeCall<T>(call: Promise<T>, then: (value: T) => unknown): void {
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
        if (!this.failing) this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'presence store unreachable; the heartbeat will rebuild presence');
        this.failing = true;
      },
    );
  }

  /** Queues a change for its scope's next announcement; a user who joined and left within one interval is no change. */
  private changed(scope: PresenceScope, userId: string, change: PresenceChangeKind): void {
    if (this.closed) return;
    this.queue(scope, { userId, change, at: this.now() });
    this.flushTimer ??= setTimeout(() => void this.flush(), this.options.coalesceMs);
  }

  private queue(scope: PresenceScope, entry: PresenceChange): void {
    let changes = this.pending.get(scope);
    if (!changes) this.pending.set(scope, (changes = new Map()));
    const queued = changes.get(entry.userId);
    if (queued) queued.last = entry;
    else changes.set(entry.userId, { before: entry.change === 'JOINED' ? 'LEFT' : 'JOINED', last: entry });
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const pending = [...this.pending];
    this.pending.clear();
    const announcements: Array<Promise<void>> = [];
    for (const [scope, changes] of pending) {
      const net = [...changes.values()].filter((queued) => queued.last.change !== queued.before).map((queued) => queued.last);
      if (net.length === 0) continue;
      this.options.onAnnounced?.(scope, net);
      announcements.push(
        this.options.announce(scope, net).catch((error: unknown) => {
          this.options.logger.warn({ err: error instanceof Error ? error.message : String(error), scope }, 'presence change could not be announced');
        }),
      );
    }
    await Promise.all(announcements);
  }
}
