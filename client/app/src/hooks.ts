import { useCallback, useEffect, useLayoutEffect, useRef, useState, useSyncExternalStore } from 'react';
import { useClient, type AnyVariables, type CombinedError, type DocumentInput } from 'urql';
import type { ConnectionState, TidingsClient } from '@tidings/client';

/** The client's connection state (live, reconnecting, offline…), re-rendering on every change. */
export function useConnectionState(client: TidingsClient): ConnectionState {
  const subscribe = useCallback((onChange: () => void) => client.connection.subscribe(() => onChange()), [client]);
  return useSyncExternalStore(subscribe, () => client.connection.get());
}

/**
 * Calls `onEvent` for every event of a subscription, in order. Unlike urql's useSubscription,
 * which renders the latest result, no event is lost when several arrive between two renders
 * (chat chunks, bursts of messages). Resubscribes when the variables or `resubscribeKey` change.
 */
export function useEventStream<Data, Variables extends AnyVariables>(
  document: DocumentInput<Data, Variables>,
  variables: Variables,
  onEvent: (data: Data) => void,
  options: { pause?: boolean; resubscribeKey?: unknown } = {},
): { error: CombinedError | undefined } {
  const client = useClient();
  const [error, setError] = useState<CombinedError>();
  const onEventRef = useRef(onEvent);
  useLayoutEffect(() => {
    onEventRef.current = onEvent;
  });
  const variablesKey = JSON.stringify(variables);

  useEffect(() => {
    if (options.pause) return;
    setError(undefined);
    const subscription = client.subscription(document, JSON.parse(variablesKey) as Variables).subscribe((result) => {
      if (result.error) setError(result.error);
      if (result.data) onEventRef.current(result.data);
    });
    return () => subscription.unsubscribe();
  }, [client, document, variablesKey, options.pause, options.resubscribeKey]);

  return { error };
}

/** Wraps an async action for a button: `busy` while it runs, `error` if it failed. */
export function useAction<Args extends unknown[]>(action: (...args: Args) => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async (...args: Args) => {
    setBusy(true);
    setError(undefined);
    try {
      await action(...args);
    } catch (caught) {
      setError(caught instanceof Error ? caught.message : String(caught));
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error };
}
