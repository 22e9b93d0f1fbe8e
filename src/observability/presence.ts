import type { Principal } from '../auth/principal.js';
import type { PresenceSnapshot } from '../metrics/metrics.js';

export type TransportName = 'websocket' | 'sse';

export interface PresenceStats extends PresenceSnapshot {
  /** Distinct users by role (a user with two roles counts in both); `anonymous` counts connections. */
  readonly usersByRole: Readonly<Record<string, number>>;
}

/**
 * Who is connected to this instance right now: connections by transport, distinct users and
 * their roles, subscriptions by root field. Feeds the gauges on /metrics and the /stats snapshot.
 * Each registration returns an entry whose `release` undoes it once.
 */
export class Presence {
  /**
   * @param online what an open connection of a user holds for its life: that user's online state
   *   across instances (src/presence/; the PresenceTracker's user scope).
   */
  constructor(private readonly online?: (userId: string) => PresenceEntry) {}

  private readonly connections = new Map<TransportName, number>();
  private readonly users = new Map<string, { connections: number; roles: ReadonlySet<string> }>();
  private anonymousConnections = 0;
  private readonly subscriptions = new Map<string, number>();

  connectionOpened(transport: TransportName, principal: Principal): PresenceEntry {
    this.connections.set(transport, (this.connections.get(transport) ?? 0) + 1);
    if (principal.kind === 'user') {
      const user = this.users.get(principal.userId) ?? { connections: 0, roles: principal.roles };
      user.connections++;
      this.users.set(principal.userId, user);
    } else {
      this.anonymousConnections++;
    }
    return new ConnectionEntry(this, transport, principal, principal.kind === 'user' ? this.online?.(principal.userId) : undefined);
  }

  subscriptionStarted(field: string): PresenceEntry {
    this.subscriptions.set(field, (this.subscriptions.get(field) ?? 0) + 1);
    return new SubscriptionEntry(this, field);
  }

  /** @internal ConnectionEntry's release. */
  connectionClosed(transport: TransportName, principal: Principal): void {
    this.connections.set(transport, (this.connections.get(transport) ?? 1) - 1);
    if (principal.kind !== 'user') {
      this.anonymousConnections--;
      return;
    }
    const user = this.users.get(principal.userId);
    if (user && --user.connections <= 0) this.users.delete(principal.userId);
  }

  /** @internal SubscriptionEntry's release. */
  subscriptionEnded(field: string): void {
    const left = (this.subscriptions.get(field) ?? 1) - 1;
    if (left <= 0) this.subscriptions.delete(field);
    else this.subscriptions.set(field, left);
  }

  snapshot(): PresenceStats {
    const usersByRole: Record<string, number> = {};
    for (const { roles } of this.users.values()) for (const role of roles) usersByRole[role] = (usersByRole[role] ?? 0) + 1;
    if (this.anonymousConnections > 0) usersByRole['anonymous'] = this.anonymousConnections;
    return {
      connections: { websocket: this.connections.get('websocket') ?? 0, sse: this.connections.get('sse') ?? 0 },
      uniqueUsers: this.users.size,
      usersByRole,
      subscriptions: Object.fromEntries([...this.subscriptions].sort(([a], [b]) => a.localeCompare(b))),
    };
  }
}

/** One registration; `release` is idempotent. */
export interface PresenceEntry {
  release(): void;
}

// Objects rather than closures: every connection and subscription holds one for its whole life.
class ConnectionEntry implements PresenceEntry {
  private released = false;
  constructor(
    private readonly presence: Presence,
    private readonly transport: TransportName,
    private readonly principal: Principal,
    private readonly online: PresenceEntry | undefined,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.presence.connectionClosed(this.transport, this.principal);
    this.online?.release();
  }
}

class SubscriptionEntry implements PresenceEntry {
  private released = false;
  constructor(
    private readonly presence: Presence,
    private readonly field: string,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.presence.subscriptionEnded(this.field);
  }
}
