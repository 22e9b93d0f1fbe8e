import { Repeater } from 'graphql-yoga';

/** Yielded once, last, when a subscriber lost the right to the stream (for example removed from a conversation). */
export const REVOKED = Symbol('tidings.revoked');
export type Revoked = typeof REVOKED;

export interface StreamGuard<T> {
  /** Per-subscriber filter, e.g. "not my own typing event" or "only this booking". */
  accept?: (value: T) => boolean;
  /** Registers a callback that fires when access is revoked; returns its unregistration. */
  watchRevocation?: (onRevoked: () => void) => () => void;
  /**
   * Checked once after the watch is registered: closes the gap between the subscribe-time
   * authorization and the watch, during which a revocation would otherwise be missed.
   */
  stillAllowed?: () => Promise<boolean>;
}

/**
 * Wraps a topic stream with one subscriber's filter and revocation. On revocation it yields
 * REVOKED (the resolver turns that into a FORBIDDEN error) and completes, instead of throwing:
 * an iterator that throws would make graphql-ws close the whole socket.
 */
export function guardStream<T>(source: AsyncIterableIterator<T>, guard: StreamGuard<T>): AsyncIterableIterator<T | Revoked> {
  return new Repeater<T | Revoked>(async (push, stop) => {
    let revoked = false;
    const revoke = () => {
      if (revoked) return;
      revoked = true;
      void push(REVOKED);
      stop();
    };
    // Ending the source also ends the pump loop below.
    void stop.then(() => source.return?.());
    const unwatch = guard.watchRevocation?.(revoke);
    try {
      if (guard.stillAllowed && !(await guard.stillAllowed())) revoke();
      for await (const value of source) {
        if (revoked) break;
        if (guard.accept && !guard.accept(value)) continue;
        await push(value);
      }
    } finally {
      unwatch?.();
      stop();
    }
  });
}
