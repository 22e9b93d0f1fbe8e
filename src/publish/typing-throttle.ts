/**
 * Keeps typing updates cheap: a user's repeated "STARTED" for a conversation is passed at most
 * once per interval; a change of state (STARTED -> STOPPED) always passes so indicators clear
 * promptly. Purely in memory: typing is ephemeral and never stored.
 */
export interface TypingThrottle {
  /** True when this update should be published. */
  admit(conversationId: string, userId: string, state: 'STARTED' | 'STOPPED'): boolean;
}

export function createTypingThrottle(intervalMs: number, now: () => number = Date.now): TypingThrottle {
  const last = new Map<string, { state: 'STARTED' | 'STOPPED'; at: number }>();
  let lastSweep = now();
  return {
    admit(conversationId, userId, state) {
      const at = now();
      // Sweep stale entries now and then so the map holds only recent typists.
      if (at - lastSweep > 60_000) {
        for (const [key, entry] of last) if (at - entry.at > intervalMs) last.delete(key);
        lastSweep = at;
      }
      const key = `${conversationId}\u0000${userId}`;
      const previous = last.get(key);
      if (previous && previous.state === state && at - previous.at < intervalMs) return false;
      last.set(key, { state, at });
      return true;
    },
  };
}
