import type { ConnectionStatus } from '@tidings/client';
import { useTidingsConnection } from '@tidings/client/react';

const LABELS: Record<ConnectionStatus, string> = {
  connecting: 'Connecting',
  live: 'Live',
  reconnecting: 'Reconnecting',
  offline: 'Offline',
};

/** Live / Reconnecting / Offline, and over which transport. */
export function ConnectionBadge() {
  const { status, transport } = useTidingsConnection();
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
