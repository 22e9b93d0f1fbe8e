import type { Logger } from 'pino';
import type { Principal } from '../auth/principal.js';
import { TokenRejectedError } from '../auth/token-verifier.js';
import { parseChannelMessageBytes, sessionRevocationSchema, type SessionRevocation } from '../events/contracts.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { RedisConnections } from '../redis/connections.js';
import { redisKeys } from '../redis/keys.js';

type UserPrincipal = Extract<Principal, { kind: 'user' }>;

/**
 * Ending a user's sessions on demand (a service calls `revokeSessions`, or publishes on Redis):
 * every live connection and subscription of that user, on every instance, ends now, and tokens
 * issued before the revocation are refused from then on, so a stolen token cannot reconnect.
 */
export interface SessionRevocations {
  /** Rejects with TokenRejectedError('revoked') when the token predates a revocation of its user. */
  assertNotRevoked(principal: UserPrincipal): Promise<void>;
  /** Stores the revocation and announces it to every instance. */
  revoke(userId: string, reason: string | undefined): Promise<SessionRevocation>;
  /** Tells `listener` if this principal's session is revoked while live, until cancelled. */
  watch(principal: UserPrincipal, listener: RevocationListener): SessionWatch;
  /** Live sessions watched on this instance (for tests and stats). */
  watchedCount(): number;
  close(): void;
}

/** Who is told that a live session was revoked (a connection, or a subscription over SSE). */
export interface RevocationListener {
  sessionRevoked(reason: string): void;
}

/** A live session being watched; `cancel` is idempotent. */
export interface SessionWatch {
  cancel(): void;
}

/**
 * A token issued in the same second as the revocation is taken as issued after it: `iat` has a
 * resolution of one second, and refusing the fresh token a client fetched right after being
 * revoked would lock the user out for the rest of that second.
 */
export function isRevokedBy(principal: UserPrincipal, revokedAt: number): boolean {
  if (principal.issuedAt === undefined) return true;
  return principal.issuedAt < Math.floor(revokedAt / 1000) * 1000;
}

const revokedError = (reason?: string) =>
  new TokenRejectedError('revoked', reason ? `Session was revoked (${reason}); sign in again` : 'Session was revoked; sign in again');

export { revokedError as sessionRevokedError };

/**
 * This instance's live sessions, by user: what a revocation must end here. It also remembers the
 * latest revocation announced per user for a while, so a session whose watch starts just after
 * the announcement (its token was checked just before) is still ended.
 */
class LiveSessions {
  /** Each user's watches as a linked list (most users have one session: no set per user). */
  private readonly byUser = new Map<string, Watch>();
  private readonly recent = new Map<string, SessionRevocation>();
  private count = 0;

  constructor(private readonly onError: (error: unknown) => void) {}

  watch(principal: UserPrincipal, listener: RevocationListener): SessionWatch {
    const known = this.recent.get(principal.userId);
    if (known && isRevokedBy(principal, known.revokedAt)) {
      queueMicrotask(() => this.notify(listener, known.reason ?? 'revoked'));
    }
    const watch = new Watch(this, principal, listener);
    const head = this.byUser.get(principal.userId);
    if (head) {
      watch.next = head;
      head.previous = watch;
    }
    this.byUser.set(principal.userId, watch);
    this.count++;
    return watch;
  }

  /** @internal Watch.cancel. */
  unlink(watch: Watch): void {
    this.count--;
    if (watch.previous) watch.previous.next = watch.next;
    else if (watch.next) this.byUser.set(watch.principal.userId, watch.next);
    else this.byUser.delete(watch.principal.userId);
    if (watch.next) watch.next.previous = watch.previous;
    watch.previous = watch.next = undefined;
  }

  end(revocation: SessionRevocation): number {
    this.remember(revocation);
    const watches: Watch[] = [];
    for (let watch = this.byUser.get(revocation.userId); watch; watch = watch.next) watches.push(watch);
    let ended = 0;
    for (const watch of watches) {
      if (!isRevokedBy(watch.principal, revocation.revokedAt)) continue;
      ended++;
      this.notify(watch.listener, revocation.reason ?? 'revoked');
    }
    return ended;
  }

  /** One failing session must not keep the others of that user alive. */
  private notify(listener: RevocationListener, reason: string): void {
    try {
      listener.sessionRevoked(reason);
    } catch (error) {
      this.onError(error);
    }
  }

  /** Bounded: the gap it covers is the few milliseconds between a token check and its watch. */
  private remember(revocation: SessionRevocation): void {
    this.recent.delete(revocation.userId);
    this.recent.set(revocation.userId, revocation);
    const now = Date.now();
    for (const [userId, remembered] of this.recent) {
      if (this.recent.size <= 10_000 && remembered.revokedAt > now - 60_000) break;
      this.recent.delete(userId);
    }
  }

  users(): string[] {
    return [...this.byUser.keys()];
  }

  size(): number {
    return this.count;
  }
}

class Watch implements SessionWatch {
  previous: Watch | undefined = undefined;
  next: Watch | undefined = undefined;
  private cancelled = false;

  constructor(
    private readonly sessions: LiveSessions,
    readonly principal: UserPrincipal,
    readonly listener: RevocationListener,
  ) {}

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.sessions.unlink(this);
  }
}

/** One instance: revocations live in this process, expiring after `ttlMs`. */
export function createMemorySessionRevocations(options: { ttlMs: number; now?: () => number }): SessionRevocations {
  const now = options.now ?? Date.now;
  const revoked = new Map<string, SessionRevocation>();
  const live = new LiveSessions(() => undefined);
  const current = (userId: string) => {
    const revocation = revoked.get(userId);
    if (revocation && revocation.revokedAt + options.ttlMs < now()) {
      revoked.delete(userId);
      return undefined;
    }
    return revocation;
  };
  return {
    async assertNotRevoked(principal) {
      const revocation = current(principal.userId);
      if (revocation && isRevokedBy(principal, revocation.revokedAt)) throw revokedError(revocation.reason);
    },
    async revoke(userId, reason) {
      const revocation: SessionRevocation = { userId, revokedAt: now(), ...(reason ? { reason } : {}) };
      revoked.set(userId, revocation);
      live.end(revocation);
      return revocation;
    },
    watch: (principal, listener) => live.watch(principal, listener),
    watchedCount: () => live.size(),
    close() {},
  };
}

/**
 * Across instances: the revocation is a Redis key (`{prefix}sessions-revoked:{userId}`, epoch ms,
 * expiring after `ttlMs`) checked when a token is presented, and an announcement on
 * `{prefix}sessions:revoked` that makes every instance end the user's live sessions. After the
 * subscriber connection comes back, announcements may have been missed, so the users with live
 * sessions here are re-checked against their keys.
 */
export function createRedisSessionRevocations(options: {
  connections: RedisConnections;
  prefix: string;
  ttlMs: number;
  logger: Logger;
  metrics: GatewayMetrics;
}): SessionRevocations {
  const { connections, logger, metrics } = options;
  const keys = redisKeys(options.prefix);
  const channel = keys.sessionRevocationChannel();
  const live = new LiveSessions((error) => logger.error({ err: error }, 'ending a revoked session failed'));

  const apply = (revocation: SessionRevocation) => {
    const ended = live.end(revocation);
    if (ended > 0) logger.info({ userId: revocation.userId, ended }, 'ended revoked sessions');
  };

  // As bytes (`messageBuffer`): invalid UTF-8 is refused, not decoded into U+FFFD.
  const onMessage = (messageChannel: Buffer, message: Buffer) => {
    if (messageChannel.toString('utf8') !== channel) return;
    const parsed = parseChannelMessageBytes(message, sessionRevocationSchema);
    if (!parsed.ok) {
      metrics.eventsDropped.inc({ reason: parsed.reason, source: 'sessions' });
      logger.warn({ channel, issues: parsed.issues }, 'dropped an invalid session revocation');
      return;
    }
    try {
      apply(parsed.data);
    } catch (error) {
      // A listener of ioredis' message events must never throw: it would take the process down.
      logger.error({ err: error }, 'applying a session revocation failed');
    }
  };

  let recheckPending = false;
  const recheckLiveUsers = async () => {
    const users = live.users();
    if (users.length === 0) return;
    try {
      const values = await connections.commands.mget(users.map((userId) => keys.sessionsRevoked(userId)));
      values.forEach((value, index) => {
        const revokedAt = Number(value);
        if (value !== null && Number.isFinite(revokedAt)) apply({ userId: users[index] as string, revokedAt });
      });
    } catch (error) {
      recheckPending = true;
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'session revocation re-check failed; retrying on reconnect');
    }
  };

  let connectedBefore = connections.subscriber.status === 'ready';
  const recheckWhenPossible = () => {
    if (connections.commands.status === 'ready') void recheckLiveUsers();
    else recheckPending = true;
  };
  const onSubscriberReady = () => {
    if (!connectedBefore) {
      connectedBefore = true;
      return;
    }
    // ioredis re-subscribes on its own (autoResubscribe); what was announced meanwhile is lost.
    recheckWhenPossible();
  };
  // The subscriber connection is often back before the commands one: re-check once both are.
  const onCommandsReady = () => {
    if (!recheckPending) return;
    recheckPending = false;
    void recheckLiveUsers();
  };
  connections.subscriber.on('messageBuffer', onMessage);
  connections.subscriber.on('ready', onSubscriberReady);
  connections.commands.on('ready', onCommandsReady);
  connections.subscriber.subscribe(channel).catch((error: unknown) => logger.error({ err: error, channel }, 'redis SUBSCRIBE to the session revocation channel failed'));

  return {
    async assertNotRevoked(principal) {
      let value: string | null;
      try {
        value = await connections.commands.get(keys.sessionsRevoked(principal.userId));
      } catch (error) {
        // Fail open: the token itself was verified; an outage must not sign everybody out. The
        // re-check after reconnect still ends sessions revoked meanwhile.
        logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'session revocation check unavailable; allowing');
        return;
      }
      const revokedAt = Number(value);
      if (value !== null && Number.isFinite(revokedAt) && isRevokedBy(principal, revokedAt)) throw revokedError();
    },
    async revoke(userId, reason) {
      const revocation: SessionRevocation = { userId, revokedAt: Date.now(), ...(reason ? { reason } : {}) };
      // Stored and announced together: an instance that hears of it finds the key set.
      const results = await connections.commands
        .multi()
        .set(keys.sessionsRevoked(userId), String(revocation.revokedAt), 'PX', options.ttlMs)
        .publish(channel, JSON.stringify(revocation))
        .exec();
      const failed = results?.find(([error]) => error);
      if (!results || failed) throw failed?.[0] ?? new Error('session revocation transaction aborted');
      return revocation;
    },
    watch: (principal, listener) => live.watch(principal, listener),
    watchedCount: () => live.size(),
    close() {
      connections.subscriber.off('messageBuffer', onMessage);
      connections.subscriber.off('ready', onSubscriberReady);
      connections.commands.off('ready', onCommandsReady);
    },
  };
}
