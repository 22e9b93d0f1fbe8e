import type { Plugin } from 'graphql-yoga';

/**
 * Counts queries and mutations being executed, on every transport, so shutdown can let them
 * finish (and publish) before it closes Redis. Subscriptions are not counted: they are ended.
 */
export interface InFlightOperations {
  readonly plugin: Plugin;
  count(): number;
  /** Resolves when nothing is executing. */
  idle(): Promise<void>;
}

export function createInFlightOperations(): InFlightOperations {
  let executing = 0;
  let waiters: Array<() => void> = [];
  const settle = () => {
    if (executing > 0) return;
    const toWake = waiters;
    waiters = [];
    for (const wake of toWake) wake();
  };
  return {
    plugin: {
      onExecute() {
        executing += 1;
        return {
          onExecuteDone() {
            executing -= 1;
            settle();
          },
        };
      },
    },
    count: () => executing,
    idle: () => (executing === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
  };
}
