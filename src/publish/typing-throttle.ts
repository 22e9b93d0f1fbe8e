/**
 * Keeps typing updates cheap: a user's repeated "STARTED" for a conversation passes at most once
 * per interval, and a change of state (STARTED -> STOPPED) passes so indicators clear promptly,
 * but never more than MAX_UPDATES_PER_INTERVAL updates of any kind per interval, so alternating
 * states cannot flood the other members. Purely in memory: typing is ephemeral and never stored.
 */
export interface TypingThrottle {
  /** True when this update should be published. */
  admit(conversationId: string, userId: string, state: 'STARTED' | 'STOPPED'): boolean;
}

const MAX_UPDATES_PER_INTERVAL = 4;

interface TypistState {
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
      // Sweep stale entries now and then so the map holds only recent typists.
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
      if (previous.updatesInWindow >= MAX_UPDATES_PER_INTERVAL) return false;
      previous.state = state;
      previous.at = at;
      previous.updatesInWindow += 1;
      return true;
    },
  };
}
