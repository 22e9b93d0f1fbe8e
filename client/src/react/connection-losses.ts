import { useEffect, useLayoutEffect, useRef } from 'react';
import type { TidingsClient } from '../create-client.js';

/**
 * Calls `onLost` whenever the client's connection leaves `live` (reconnecting, offline). What a
 * subscription showed until then may be out of date: the gateway sends its current state again
 * once the subscription is restarted on the new connection. `onLost` may change on every render.
 */
export function useConnectionLosses(client: TidingsClient | null, onLost: () => void): void {
  const onLostRef = useRef(onLost);
  useLayoutEffect(() => {
    onLostRef.current = onLost;
  });
  useEffect(() => {
    if (!client) return;
    return client.connection.subscribe(({ status }) => {
      if (status === 'reconnecting' || status === 'offline') onLostRef.current();
    });
  }, [client]);
}
