/** setTimeout cannot wait longer than this (about 24.8 days); later expiries re-arm. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Calls `onExpired` when `expiresAt` (epoch ms) passes; returns a cancel function. Long waits are
 * split into chained timers because setTimeout overflows past ~24.8 days.
 */
export function atExpiry(expiresAt: number, onExpired: () => void, now: () => number = Date.now): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const remaining = expiresAt - now();
    if (remaining <= 0) return onExpired();
    timer = setTimeout(arm, Math.min(remaining, MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
