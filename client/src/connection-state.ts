/** What a UI shows: Live, Reconnecting, Offline, and over which transport. */
export type ConnectionStatus = 'connecting' | 'live' | 'reconnecting' | 'offline';
export type TransportKind = 'websocket' | 'sse';

export interface ConnectionState {
  readonly status: ConnectionStatus;
  readonly transport: TransportKind;
  /** Why the client is offline: it keeps retrying for `unreachable`, never for `logged-out` or `disposed`. */
  readonly reason?: 'unreachable' | 'logged-out' | 'disposed' | 'fatal';
  /** Epoch ms of the last change. */
  readonly since: number;
}

export type ConnectionStateListener = (state: ConnectionState) => void;

/** A tiny observable value: read it, or subscribe to every change. */
export class ConnectionStateStore {
  private state: ConnectionState = { status: 'connecting', transport: 'websocket', since: Date.now() };
  private readonly listeners = new Set<ConnectionStateListener>();

  get(): ConnectionState {
    return this.state;
  }

  /** Calls `listener` now and on every change; returns its unsubscribe function. */
  subscribe(listener: ConnectionStateListener): () => void {
    this.listeners.add(listener);
    listener(this.state);
    return () => this.listeners.delete(listener);
  }

  /** @internal Used by the transports. */
  update(next: Omit<ConnectionState, 'since'>): void {
    const current = this.state;
    if (current.status === next.status && current.transport === next.transport && current.reason === next.reason) return;
    this.state = { ...next, since: Date.now() };
    for (const listener of this.listeners) listener(this.state);
  }
}
