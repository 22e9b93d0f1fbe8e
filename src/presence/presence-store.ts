/**
 * Where presence is kept, shared by every instance: which users are present in which scope, by
 * which instance. A scope is a conversation (its members present in it: a connection of theirs
 * holds a newMessage, userTyping or presence subscription to it) or a user (online anywhere: a
 * connection of theirs is open). Each instance holds entries for its own users and keeps them
 * alive by refreshing them (a heartbeat); an entry not refreshed within the TTL expires, so a
 * crashed instance's users go away, and a sweep by any surviving instance removes them and
 * reports who is no longer present anywhere, exactly once across instances.
 *
 * Implemented in memory (one instance) and over Redis (memory-presence-store.ts,
 * redis-presence-store.ts); both run the same contract tests (test/presence-store-contract.test.ts).
 * Ids are the gateway's id alphabet (idSchema: letters, digits, _ . @ -), so `|` never occurs in one.
 */

/** `conversation:<id>` or `user:<id>`. */
export type PresenceScope = `conversation:${string}` | `user:${string}`;

export const conversationScope = (conversationId: string): PresenceScope => `conversation:${conversationId}`;
export const userScope = (userId: string): PresenceScope => `user:${userId}`;

/** A scope's kind and id. */
export function splitScope(scope: PresenceScope): ['conversation' | 'user', string] {
  const separator = scope.indexOf(':');
  return [scope.slice(0, separator) as 'conversation' | 'user', scope.slice(separator + 1)];
}

export interface PresenceHold {
  readonly scope: PresenceScope;
  readonly userId: string;
}

export interface PresenceStore {
  /**
   * This instance holds `userId` in `scope`, until the TTL unless refreshed (idempotent: holding
   * again only extends it). True when the user became present: no entry of any instance existed
   * before (an expired entry counts until a sweep removes it, so each user's reports alternate:
   * present, gone, present).
   */
  hold(scope: PresenceScope, userId: string): Promise<boolean>;
  /**
   * This instance lets go (idempotent). True when the user is now present on no instance; false
   * when another instance still holds them; undefined when this instance had no entry (released
   * already, or the store lost it, as after a Redis restart: whether the user is present must then
   * be asked).
   */
  release(scope: PresenceScope, userId: string): Promise<boolean | undefined>;
  /**
   * The heartbeat: holds every one of these again (extending their expiry; re-creating those the
   * store lost, as after a Redis restart). Resolves the holds whose user became present again, to
   * be announced. In few round trips whatever the count. Rejects with PresenceBatchError when
   * only some calls failed (its `completed` still to be announced).
   */
  refresh(holds: readonly PresenceHold[]): Promise<PresenceHold[]>;
  /**
   * Removes the expired entries of any instance in these scopes; resolves the users that are now
   * present on no instance (each reported to exactly one caller across instances). Rejects with
   * PresenceBatchError like refresh.
   */
  sweep(scopes: readonly PresenceScope[]): Promise<PresenceHold[]>;
  /**
   * This instance is going away (a graceful stop): its entries for these holds expire within
   * `withinMs` instead of the TTL. A user who reconnects elsewhere meanwhile stays present (no
   * LEFT, no JOINED); the others are swept and announced LEFT by the surviving instances. Holds
   * without an entry are ignored. In few round trips whatever the count.
   */
  handOver(holds: readonly PresenceHold[], withinMs: number): Promise<void>;
  /** The users present in `scope` now (live entries only), each once, in no particular order. */
  present(scope: PresenceScope): Promise<string[]>;
  /** Of these users, those online now (a live entry in their user scope). One round trip. */
  online(userIds: readonly string[]): Promise<Set<string>>;
}

/**
 * Some calls of a batch (refresh, sweep) failed; the others took effect. `completed` is what the
 * ones that succeeded resolved (holds that became present, users gone): they happened, so they
 * must still be announced. The failed ones are retried by the next heartbeat or sweep.
 */
export class PresenceBatchError extends Error {
  override readonly name = 'PresenceBatchError';

  constructor(
    operation: 'refresh' | 'sweep',
    readonly completed: PresenceHold[],
    readonly failed: number,
    total: number,
    cause: unknown,
  ) {
    super(`presence ${operation}: ${failed} of ${total} calls failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
