import type { WebSocket } from 'ws';

/**
 * Shared by every queue of a transport (one object, not one per connection); the callbacks get
 * the queue's owner, the connection it was made for.
 */
export interface OutgoingQueueOptions<Owner> {
  /** Bytes the socket may hold unsent (ws' bufferedAmount) before the client counts as behind. */
  readonly maxBufferedBytes: number;
  /** A client behind for this long without catching up is a slow consumer. */
  readonly graceMs: number;
  /**
   * The operation a message belongs to and, for a message whose older versions may be dropped
   * when the client is behind (the latest price of a hotel room, the latest typing state of a
   * user), a key naming what it replaces. Only called while the client is behind, so it may parse.
   */
  classify(owner: Owner, message: string): { readonly operationId?: string; readonly conflationKey?: string };
  /** A message was replaced by a newer one with the same key before it was sent. */
  onConflated(owner: Owner): void;
  /** The client stayed behind past the grace period, or would go over twice the bound: close it. */
  onSlowConsumer(owner: Owner): void;
}

/** How often a congested socket is checked for having drained (ws has no 'drain' event). */
const DRAIN_CHECK_MS = 20;

/**
 * The bounded outgoing side of one WebSocket. While the socket keeps up, a message is written at
 * once. Once the bytes waiting in the socket exceed the bound, conflatable messages wait here,
 * only the latest per key, and are written when the socket drains; other messages are still
 * written (a burst may briefly reach twice the bound) but a client that stays behind for the
 * grace period, or would exceed twice the bound, is reported as a slow consumer. So the memory a
 * connection can hold is about twice the bound plus one message per conflation key.
 */
export class OutgoingQueue<Owner = unknown> {
  /** Conflated messages waiting while the client is behind; made when first needed. */
  private pending: Map<string, string> | undefined;
  private behindSince: number | undefined;
  private drainCheck: NodeJS.Timeout | undefined;
  private reported = false;

  constructor(
    private readonly socket: WebSocket,
    private readonly options: OutgoingQueueOptions<Owner>,
    private readonly owner: Owner,
  ) {}

  /** Bytes held for this connection: unsent socket bytes plus conflated messages waiting here. */
  heldBytes(): number {
    let bytes = this.socket.bufferedAmount;
    for (const message of this.pending?.values() ?? []) bytes += Buffer.byteLength(message);
    return bytes;
  }

  send(message: string): void {
    const { socket, options } = this;
    if (socket.readyState !== socket.OPEN || this.reported) return;
    if (this.behindSince === undefined && socket.bufferedAmount <= options.maxBufferedBytes) {
      socket.send(message);
      return;
    }
    this.fallBehind();
    const { operationId, conflationKey } = options.classify(this.owner, message);
    if (operationId !== undefined && conflationKey !== undefined) {
      const key = `${operationId}\u0000${conflationKey}`;
      const pending = (this.pending ??= new Map());
      if (pending.delete(key)) options.onConflated(this.owner);
      pending.set(key, message);
      return;
    }
    // A complete or error must not overtake that operation's conflated results.
    if (operationId !== undefined && this.pending && this.pending.size > 0) this.writePendingOf(operationId);
    if (socket.bufferedAmount + Buffer.byteLength(message) > 2 * options.maxBufferedBytes) {
      this.reportSlowConsumer();
      return;
    }
    socket.send(message);
  }

  /** Forgets the results still waiting for an operation the client completed. */
  dropOperation(operationId: string): void {
    const prefix = `${operationId}\u0000`;
    const pending = this.pending;
    if (!pending) return;
    for (const key of pending.keys()) if (key.startsWith(prefix)) pending.delete(key);
  }

  private writePendingOf(operationId: string): void {
    const prefix = `${operationId}\u0000`;
    const pending = this.pending;
    if (!pending) return;
    for (const [key, message] of pending) {
      if (!key.startsWith(prefix)) continue;
      pending.delete(key);
      this.socket.send(message);
    }
  }

  dispose(): void {
    clearInterval(this.drainCheck);
    this.drainCheck = undefined;
    this.pending = undefined;
  }

  private fallBehind(): void {
    this.behindSince ??= Date.now();
    this.drainCheck ??= setInterval(() => this.checkDrained(), DRAIN_CHECK_MS);
  }

  private checkDrained(): void {
    const { socket, options } = this;
    if (socket.readyState !== socket.OPEN) return this.dispose();
    if (socket.bufferedAmount > options.maxBufferedBytes) {
      if (Date.now() - (this.behindSince ?? Date.now()) > options.graceMs) this.reportSlowConsumer();
      return;
    }
    // Caught up: write the latest of each conflated key, stopping if that fills the socket again.
    for (const [key, message] of this.pending ?? []) {
      this.pending?.delete(key);
      socket.send(message);
      if (socket.bufferedAmount > options.maxBufferedBytes) {
        this.behindSince = Date.now();
        return;
      }
    }
    this.behindSince = undefined;
    clearInterval(this.drainCheck);
    this.drainCheck = undefined;
  }

  private reportSlowConsumer(): void {
    if (this.reported) return;
    this.reported = true;
    this.dispose();
    this.options.onSlowConsumer(this.owner);
  }
}
