import { useCallback, useSyncExternalStore } from 'react';
import type { ConnectionState } from '../connection-state.js';
import { useTidingsClient } from './provider.js';

/** Before there is a client (server rendering, hydration, signed out). */
const NOT_CONNECTED: ConnectionState = Object.freeze({ status: 'connecting', transport: 'websocket', since: 0 });
const notConnected = () => NOT_CONNECTED;
const nothingToUnsubscribe = () => undefined;

/**
 * The connection's state (`status`, `transport`, `reason`, `since`), re-rendering on every change.
 * Every transition is a new state object, so a component can also record them in an effect.
 * Server rendering and hydration see `connecting`, so the markup of both agrees.
 */
export function useTidingsConnection(): ConnectionState {
  const client = useTidingsClient();
  const subscribe = useCallback((onChange: () => void) => (client ? client.connection.subscribe(() => onChange()) : nothingToUnsubscribe), [client]);
  const snapshot = useCallback(() => (client ? client.connection.get() : NOT_CONNECTED), [client]);
  return useSyncExternalStore(subscribe, snapshot, notConnected);
}
