import type { AnyVariables, CombinedError, DocumentInput } from '@urql/core';
import { useEffect, useLayoutEffect, useRef, useState } from 'react';
import { useTidingsClient } from './provider.js';

export interface EventStreamOptions {
  /** While true there is no subscription (for example until the user is signed in). @default false */
  readonly pause?: boolean;
  /** Any value: when it changes, the subscription is started again (the variables do that by themselves). */
  readonly resubscribeKey?: unknown;
}

export interface EventStream {
  /** The last error the subscription reported (FORBIDDEN, a network failure …); cleared on resubscribe. */
  readonly error: CombinedError | undefined;
}

/**
 * Calls `onEvent` once for every event of a subscription, in the order the gateway sent them.
 * Unlike urql's `useSubscription`, which renders the latest result, no event is lost when many
 * arrive between two renders (a burst of messages, a streamed chat reply): `onEvent` runs outside
 * rendering, synchronously as each result arrives, and should update state with a functional
 * updater (`setItems((items) => [...items, event])`).
 *
 * `document` should be a module-level constant (the typed documents of `@tidings/client`): a new
 * document object starts a new subscription. The subscription starts on mount, restarts when the
 * variables (compared by value), `pause` or `resubscribeKey` change, and ends on unmount.
 * `onEvent` may be a new function on every render; the latest one is called. Under a provider
 * without a client (server rendering, signed out) nothing is subscribed.
 */
export function useEventStream<Data, Variables extends AnyVariables>(
  document: DocumentInput<Data, Variables>,
  variables: Variables,
  onEvent: (data: Data) => void,
  options: EventStreamOptions = {},
): EventStream {
  const client = useTidingsClient();
  const [error, setError] = useState<CombinedError>();
  const onEventRef = useRef(onEvent);
  useLayoutEffect(() => {
    onEventRef.current = onEvent;
  });
  const variablesKey = JSON.stringify(variables ?? {});
  const { pause = false, resubscribeKey } = options;

  useEffect(() => {
    if (pause || !client) return;
    setError(undefined);
    const subscription = client.urql.subscription(document, JSON.parse(variablesKey) as Variables).subscribe((result) => {
      if (result.error) setError(result.error);
      if (result.data) onEventRef.current(result.data);
    });
    return () => subscription.unsubscribe();
  }, [client, document, variablesKey, pause, resubscribeKey]);

  return { error };
}
