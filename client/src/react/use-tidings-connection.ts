import { useCallback, useSyncExternalStore } from 'react';
import type { ConnectionState } from '../connection-state.js';
import { useTidingsClient } from './provider.js';

/**
 * The connection's state (`status`, `transport`, `reason`, `since`), re-rendering on every change.
 * Every transition is a new state object, so a component can also record them in an effect.
 */
export function useTidingsConnection(): ConnectionState {
  const client = useTidingsClient();
  const subscribe = useCallback((onChange: () => void) => client.connection.subscribe(() => onChange()), [client]);
  return useSyncExternalStore(subscribe, () => client.connection.get());
}
