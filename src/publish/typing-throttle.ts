/**
 * Keeps typing updates cheap while never leaving an indicator stuck on "is typing…":
 *
 * - A user's repeated `STARTED` (or repeated `STOPPED`) for a conversation passes at most once per
 *   interval.
 * - A `STOPPED` whose last passed update (same user, same conversation) was a `STARTED` always
 *   passes: every `STARTED` the others saw is followed by the `STOPPED` that clears it.
 * - Any other update counts against MAX_UPDATES_PER_INTERVAL per interval (the clearing
 *   `STOPPED` counts too), so alternating states cannot flood the other members: at most
 *   MAX_UPDATES_PER_INTERVAL + 1 updates per interval pass (the one extra being a clearing
 *   `STOPPED` after the cap was reached by a `STARTED`).
 *
 * Purely in memory: typing is ephemeral and never stored.
 */
export interface TypingThrottle {
  /** True when this update should be published. */
  admit(conversationId: string, userId: string, state: 'STARTED' | 'STOPPED'): boolean;
}

export const MAX_UPDATES_PER_INTERVAL = 4;

interface TypistState {
  /** The last state that passed. */
  state: 'STARTED' | 'STOPPED';
  /** When `state` was last passed. */
  at: number;
  windowStart: number;
  updatesInWindow: number;
}

export function createTypingThrottle(intervalMs: number, now: () => number = Date.now): TypingThrottle {
  const typists = new Map<string, TypistState>();
  let lastSweep = now();
  return {
    admit(conversationId, userId, state) {
      if (intervalMs === 0) return true;
      const at = now();
      // Sweep stale entries now and then so the map holds only recent typists. A swept STARTED
      // loses nothing: a STOPPED with no entry passes as a first update.
      if (at - lastSweep > 60_000) {
        for (const [key, entry] of typists) if (at - entry.at > intervalMs) typists.delete(key);
        lastSweep = at;
      }
      const key = `${conversationId}\u0000${userId}`;
      const previous = typists.get(key);
      if (!previous || at - previous.windowStart >= intervalMs) {
        if (previous && previous.state === state && at - previous.at < intervalMs) return false;
        typists.set(key, { state, at, windowStart: at, updatesInWindow: 1 });
        return true;
      }
      if (previous.state === state && at - previous.at < intervalMs) return false;
      // Past this point the state changes. Clearing an indicator the others are showing is never
      // refused; it cannot repeat without a STARTED in between, and those are capped.
      const clearsIndicator = state === 'STOPPED' && previous.state === 'STARTED';
      if (!clearsIndicator && previous.updatesInWindow >= MAX_UPDATES_PER_INTERVAL) return false;
      previous.state = state;
      previous.at = at;
      previous.updatesInWindow += 1;
      return true;
    },
  };
}
