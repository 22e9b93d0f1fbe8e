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
 * Each registration returns its own, idempotent, release.
 */
export class Presence {
  private readonly connections = new Map<TransportName, number>();
  private readonly users = new Map<string, { connections: number; roles: ReadonlySet<string> }>();
  private anonymousConnections = 0;
  private readonly subscriptions = new Map<string, number>();

  connectionOpened(transport: TransportName, principal: Principal): () => void {
    this.connections.set(transport, (this.connections.get(transport) ?? 0) + 1);
    if (principal.kind === 'user') {
      const user = this.users.get(principal.userId) ?? { connections: 0, roles: principal.roles };
      user.connections++;
      this.users.set(principal.userId, user);
    } else {
      this.anonymousConnections++;
    }
    return once(() => {
      this.connections.set(transport, (this.connections.get(transport) ?? 1) - 1);
      if (principal.kind !== 'user') {
        this.anonymousConnections--;
        return;
      }
      const user = this.users.get(principal.userId);
      if (user && --user.connections <= 0) this.users.delete(principal.userId);
    });
  }

  subscriptionStarted(field: string): () => void {
    this.subscriptions.set(field, (this.subscriptions.get(field) ?? 0) + 1);
    return once(() => {
      const left = (this.subscriptions.get(field) ?? 1) - 1;
      if (left <= 0) this.subscriptions.delete(field);
      else this.subscriptions.set(field, left);
    });
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

function once(release: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    release();
  };
}
