import type { ConnectionStatus, TidingsClient } from '@tidings/client';
import { useConnectionState } from '../hooks.js';

const LABELS: Record<ConnectionStatus, string> = {
  connecting: 'Connecting',
  live: 'Live',
  reconnecting: 'Reconnecting',
  offline: 'Offline',
};

/** Live / Reconnecting / Offline, and over which transport. */
export function ConnectionBadge({ client }: { client: TidingsClient }) {
  const { status, transport } = useConnectionState(client);
  return (
    <div className={`connection connection-${status}`} title={`Connection: ${LABELS[status]} over ${transport}`}>
      <span className="connection-dot" aria-hidden="true" />
      <span className="connection-status" data-testid="connection-badge">
        {LABELS[status]}
      </span>
      <small className="connection-transport" data-testid="connection-transport">
        {transport === 'websocket' ? 'WebSocket' : 'SSE'}
      </small>
    </div>
  );
}
