import { userScope, type PresenceHold, type PresenceScope, type PresenceStore } from './presence-store.js';

/**
 * Presence in this process: the PresenceStore of a gateway without Redis, with the semantics of
 * the Redis store (redis-presence-store.ts) for one process. Entries are scope → user → instance →
 * expiry (epoch ms by `now`). Like Redis, an expired entry counts until a sweep (or its own
 * instance's release) removes it: a user whose entry expired and who is held again before any
 * sweep does not "become present", and the sweep then does not report them gone, so the
 * transitions reported for a user always alternate, present then gone.
 *
 * Several stores may share one `state` (createMemoryPresenceState()), each with its own
 * instanceId: how tests stand in for several instances without Redis. A gateway uses one store
 * and lets it make its own state.
 */
export interface MemoryPresenceState {
  readonly scopes: Map<PresenceScope, Map<string, Map<string, number>>>;
}

export const createMemoryPresenceState = (): MemoryPresenceState => ({ scopes: new Map() });

export interface MemoryPresenceStoreOptions {
  /** This instance; the entries it holds are its own. Must not contain `|`, `{` or `}`. */
  readonly instanceId: string;
  /** How long a hold lasts unless refreshed, in milliseconds. */
  readonly ttlMs: number;
  /** The clock, in epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Shared with other stores to simulate several instances. @default a state of its own */
  readonly state?: MemoryPresenceState;
}

/** Not allowed in any id: `|` separates user and instance in a Redis member, `{}` delimit the Cluster hash tag. */
const RESERVED = /[|{}]/;
const SCOPE = /^(?:conversation|user):[^|{}]+$/;

/**
 * Ids are validated by the callers (idSchema); one that could break a Redis key or member is a
 * programming error, refused the same way by both stores so the contract tests can check it.
 */
export function assertPresenceId(what: string, id: string): void {
  if (typeof id !== 'string' || id === '' || RESERVED.test(id)) throw new TypeError(`presence: invalid ${what} ${JSON.stringify(id)}`);
}

export function assertPresenceScope(scope: string): asserts scope is PresenceScope {
  if (typeof scope !== 'string' || !SCOPE.test(scope)) throw new TypeError(`presence: invalid scope ${JSON.stringify(scope)}`);
}

export function createMemoryPresenceStore(options: MemoryPresenceStoreOptions): PresenceStore {
  const { instanceId, ttlMs, now = Date.now } = options;
  assertPresenceId('instance id', instanceId);
  if (!(ttlMs > 0)) throw new TypeError(`presence: ttlMs must be positive, got ${ttlMs}`);
  const { scopes } = options.state ?? createMemoryPresenceState();

  /** The instances holding `userId` in `scope`, with their expiry. */
  const entriesOf = (scope: PresenceScope, userId: string) => scopes.get(scope)?.get(userId);
  const isLive = (entries: Map<string, number> | undefined, at: number) => {
    for (const expiry of entries?.values() ?? []) if (expiry > at) return true;
    return false;
  };
  /** Drops the user's (now empty) entries, and the scope when it has no user left. */
  const forget = (scope: PresenceScope, userId: string) => {
    const users = scopes.get(scope);
    users?.delete(userId);
    if (users?.size === 0) scopes.delete(scope);
  };

  const hold = (scope: PresenceScope, userId: string): boolean => {
    let users = scopes.get(scope);
    if (!users) scopes.set(scope, (users = new Map()));
    let entries = users.get(userId);
    if (!entries) users.set(userId, (entries = new Map()));
    const became = entries.size === 0;
    entries.set(instanceId, now() + ttlMs);
    return became;
  };

  const check = (scope: string, userId: string) => {
    assertPresenceScope(scope);
    assertPresenceId('user id', userId);
  };

  return {
    async hold(scope, userId) {
      check(scope, userId);
      return hold(scope, userId);
    },

    async release(scope, userId) {
      check(scope, userId);
      const entries = entriesOf(scope, userId);
      if (!entries?.delete(instanceId)) return undefined;
      if (entries.size > 0) return false;
      forget(scope, userId);
      return true;
    },

    async refresh(holds) {
      for (const { scope, userId } of holds) check(scope, userId);
      return holds.filter(({ scope, userId }) => hold(scope, userId));
    },

    async handOver(holds, withinMs) {
      for (const { scope, userId } of holds) check(scope, userId);
      const until = now() + Math.max(0, withinMs);
      for (const { scope, userId } of holds) {
        const entries = entriesOf(scope, userId);
        if (entries?.has(instanceId)) entries.set(instanceId, until);
      }
    },

    async sweep(sweptScopes) {
      for (const scope of sweptScopes) assertPresenceScope(scope);
      const at = now();
      const gone: PresenceHold[] = [];
      for (const scope of new Set(sweptScopes)) {
        for (const [userId, entries] of scopes.get(scope) ?? []) {
          let removed = false;
          for (const [instance, expiry] of entries) {
            if (expiry > at) continue;
            entries.delete(instance);
            removed = true;
          }
          if (removed && entries.size === 0) {
            forget(scope, userId);
            gone.push({ scope, userId });
          }
        }
      }
      return gone;
    },

    async present(scope) {
      assertPresenceScope(scope);
      const at = now();
      return [...(scopes.get(scope) ?? [])].filter(([, entries]) => isLive(entries, at)).map(([userId]) => userId);
    },

    async online(userIds) {
      for (const userId of userIds) assertPresenceId('user id', userId);
      const at = now();
      return new Set(userIds.filter((userId) => isLive(entriesOf(userScope(userId), userId), at)));
    },
  };
}
