import type { Logger } from 'pino';
import type { RevocationCheck } from '../auth/authenticator.js';
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
export interface SessionRevocations extends RevocationCheck {
  /** Stores the revocation and announces it to every instance. */
  revoke(userId: string, reason: string | undefined): Promise<SessionRevocation>;
  /** Tells `listener` if this principal's session is revoked while live, until cancelled. */
  watch(principal: UserPrincipal, listener: RevocationListener): SessionWatch;
  /** Live sessions watched on this instance (for tests and stats). */
  watchedCount(): number;
  /** True while token checks are answered from the local mirror, without asking Redis (Redis only). */
  mirrorInSync?(): boolean;
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

/** Revoked users the Redis variant mirrors at most; past it, checks ask Redis again. */
const MAX_MIRRORED_REVOCATIONS = 1_000_000;

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
 * expiring after `ttlMs`) and an announcement on `{prefix}sessions:revoked` that makes every
 * instance end the user's live sessions. Each instance mirrors the keys (see `mirror`), so a
 * token check is answered locally while the mirror is in sync and by a GET otherwise. After the
 * subscriber connection comes back, announcements may have been missed: the keys are loaded
 * again, and the live sessions they revoke are ended.
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
    remember(revocation);
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

  /**
   * Every revocation still in force, mirrored from Redis so a token check costs no round trip:
   * loaded (SCAN of the revocation keys) once the announcement channel is subscribed, at start
   * and after every reconnect, and kept current from the channel. Trusted only while `inSync`:
   * from the subscriber's loss until the next load completes, checks ask Redis as before.
   */
  const mirror = new Map<string, SessionRevocation>();
  let inSync = false;
  let loading: Promise<void> | undefined;
  let loadPending = false;
  const remember = (revocation: SessionRevocation) => {
    const known = mirror.get(revocation.userId);
    if (known && known.revokedAt >= revocation.revokedAt) return;
    if (mirror.size >= MAX_MIRRORED_REVOCATIONS && !known) {
      // More revoked users than worth holding: ask Redis again rather than grow without bound.
      inSync = false;
      return;
    }
    mirror.set(revocation.userId, revocation);
  };
  const mirrored = (userId: string, now: number): SessionRevocation | undefined => {
    const revocation = mirror.get(userId);
    if (revocation && revocation.revokedAt + options.ttlMs < now) {
      mirror.delete(userId);
      return undefined;
    }
    return revocation;
  };
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [userId, revocation] of mirror) if (revocation.revokedAt + options.ttlMs < now) mirror.delete(userId);
  }, 60_000);
  sweep.unref();

  /** Subscribes (again), then reads every revocation key: what is announced after the SUBSCRIBE arrives on the channel, what came before is in the keys. */
  const load = async () => {
    try {
      await connections.subscriber.subscribe(channel);
      const pattern = keys.sessionsRevoked('*');
      const prefixLength = keys.sessionsRevoked('').length;
      const loaded: SessionRevocation[] = [];
      let cursor = '0';
      do {
        const [next, found] = await connections.commands.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
        cursor = next;
        if (found.length === 0) continue;
        const values = await connections.commands.mget(found);
        values.forEach((value, index) => {
          const revokedAt = Number(value);
          if (value !== null && Number.isFinite(revokedAt)) loaded.push({ userId: (found[index] as string).slice(prefixLength), revokedAt });
        });
      } while (cursor !== '0');
      // Merged, not replaced: an announcement handled during the scan may be for a key the scan
      // had passed. An entry Redis lost (a restart) stays until it would have expired: it can
      // only refuse tokens issued before the revocation, which is what was asked.
      for (const revocation of loaded) remember(revocation);
      inSync = mirror.size < MAX_MIRRORED_REVOCATIONS;
      // Announcements missed while the subscriber was away: end the sessions they revoke here.
      for (const revocation of loaded) apply(revocation);
      logger.debug({ revocations: loaded.length, inSync }, 'session revocations loaded');
    } catch (error) {
      loadPending = true;
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'loading session revocations failed; asking Redis per check until the next reconnect');
    }
  };
  const loadWhenPossible = () => {
    if (connections.commands.status !== 'ready' || connections.subscriber.status !== 'ready') {
      loadPending = true;
      return;
    }
    loadPending = false;
    loading ??= load().finally(() => {
      loading = undefined;
      // A loss during the load: load again once both connections are back.
      if (loadPending) loadWhenPossible();
    });
  };
  // Out of sync from the moment announcements may be missed until the next load has completed.
  const onSubscriberClose = () => {
    inSync = false;
    loadPending = true;
  };
  const onReady = () => {
    if (loadPending || !inSync) loadWhenPossible();
  };
  connections.subscriber.on('messageBuffer', onMessage);
  connections.subscriber.on('close', onSubscriberClose);
  connections.subscriber.on('ready', onReady);
  connections.commands.on('ready', onReady);
  loadWhenPossible();

  return {
    async assertNotRevoked(principal) {
      if (inSync) {
        const revocation = mirrored(principal.userId, Date.now());
        if (revocation && isRevokedBy(principal, revocation.revokedAt)) throw revokedError(revocation.reason);
        return;
      }
      let value: string | null;
      try {
        value = await connections.commands.get(keys.sessionsRevoked(principal.userId));
      } catch (error) {
        // Refused, like a token whose signing keys cannot be fetched: a revoked token (a stolen
        // one, say) must not get in because Redis is down. Only checks made while the mirror is
        // out of sync get here; live sessions are not touched, and clients retry on `unavailable`.
        logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'session revocation check unavailable; refusing the token');
        throw new TokenRejectedError('unavailable', 'Session revocations cannot be checked right now; try again');
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
    mirrorInSync: () => inSync,
    close() {
      clearInterval(sweep);
      connections.subscriber.off('messageBuffer', onMessage);
      connections.subscriber.off('close', onSubscriberClose);
      connections.subscriber.off('ready', onReady);
      connections.commands.off('ready', onReady);
    },
  };
}
