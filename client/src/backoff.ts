export interface BackoffOptions {
  /** First retry delay before jitter. @default 500 */
  readonly initialDelayMs?: number;
  /** Upper bound of any delay. @default 15_000 */
  readonly maxDelayMs?: number;
  /** Growth per attempt. @default 2 */
  readonly factor?: number;
}

/**
 * Exponential backoff with full jitter: a random delay between 0 and
 * min(maxDelayMs, initialDelayMs * factor^attempt), so a restarted gateway is not hit by every
 * client at the same instant.
 */
export function backoffDelayMs(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { initialDelayMs = 500, maxDelayMs = 15_000, factor = 2 } = options;
  const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** Math.max(0, attempt));
  return Math.round(random() * ceiling);
}
