import type { GraphQLError } from 'graphql';
import { CloseCode, GRAPHQL_TRANSPORT_WS_PROTOCOL, MessageType, parseMessage, stringifyMessage, type SubscribePayload } from 'graphql-ws';

/**
 * The server half of the `graphql-transport-ws` protocol, owned here; graphql-ws' PROTOCOL.md
 * (node_modules/graphql-ws/PROTOCOL.md) is its contract, and test/ws-protocol.test.ts and
 * test/protocol-abuse.test.ts prove it. graphql-ws supplies the message parsing and validation
 * (`parseMessage`), the encoding (`stringifyMessage`) and the close codes; its clients are used
 * everywhere. Owning this half lets a subscription's events be written by the delivery that
 * produces them (see shared-delivery.ts), without an async loop per operation and without
 * reaching into graphql-ws' server state.
 *
 * The rules, as PROTOCOL.md states them:
 * - Only `graphql-transport-ws` is spoken; any other subprotocol is closed with 4406.
 * - `connection_init` first; a second one closes with 4429. Its payload goes to `connect`; the
 *   server answers `connection_ack` (with `ackPayload` when given: what the server asks of its
 *   clients) or, when `connect` refuses, `connect` has closed the socket with its own code. (The init timeout, 4408, is the transport's timer.)
 * - `ping` is answered with `pong`, echoing its payload if it had one, before and after init;
 *   `pong` is ignored.
 * - `subscribe` before the ack closes with 4401; an id already in use closes with 4409. An
 *   operation ends with exactly one of: `error` (it could not run: parse, validation or context
 *   errors, or a failure of the server's own), any number of `next` and then `complete` from the
 *   server, or `complete` from the client (after which the server sends nothing more for it).
 *   The id is free again once it ended.
 * - A `complete` for an id not in use is ignored.
 * - Anything else (not JSON, not a valid message, a message only the server sends) closes with
 *   4400 "Invalid message received".
 */

/** What the protocol needs of a connection: its socket, and its protocol state. */
export interface ProtocolConnection {
  /** The subprotocol the handshake agreed on. */
  readonly protocol: string;
  /** Writes a frame; never waits (backpressure is the transport's). */
  send(frame: string): void;
  close(code: number, reason: string): void;
  /** Set by the protocol: connection_init was received, and acknowledged. */
  initReceived: boolean;
  acknowledged: boolean;
  /** The operations in use by id; made on the first (most connections have a handful). */
  operations: Map<string, WsOperation> | undefined;
}

/** Told when the client completes an operation or its connection closes. */
export interface OperationStopper {
  stop(): void;
}

/** What the transport decides: whom to let in, and how to run each operation. */
export interface ProtocolHandlers<C extends ProtocolConnection> {
  /** The payload of every connection_ack (the same for every connection of a server). */
  readonly ackPayload?: Record<string, unknown> | undefined;
  /**
   * The connection_init payload (an object, or undefined). Resolves true to acknowledge; false
   * when refused, after closing the socket with the reason (4403, 4291…).
   */
  connect(connection: C, payload: Record<string, unknown> | undefined): Promise<boolean>;
  /**
   * Runs an operation: answers it through `operation` (next, error, complete), and registers
   * what stops it (`operation.running`). The operation may be completed by the client while this
   * is still deciding: `operation.open` says so, and nothing sent for it then reaches the client.
   */
  subscribe(connection: C, operation: WsOperation, payload: SubscribePayload): Promise<void>;
  /** The client completed an operation (it is stopped already). */
  completedByClient?(connection: C, operation: WsOperation): void;
}

/** One operation of a connection, from its `subscribe` until it ends. */
export class WsOperation {
  /** The id as a JSON string, spliced into each next frame. */
  readonly idJson: string;
  private stopper: OperationStopper | undefined = undefined;
  private ended = false;

  constructor(
    private readonly connection: ProtocolConnection,
    readonly id: string,
  ) {
    this.idJson = JSON.stringify(id);
  }

  /** Not ended: neither completed (by either side) nor errored, and its connection is open. */
  get open(): boolean {
    return !this.ended;
  }

  /**
   * The operation is running: `stopper` is told when the client completes it or the connection
   * closes. False when it ended meanwhile; the caller then stops what it started itself.
   */
  running(stopper: OperationStopper): boolean {
    if (this.ended) return false;
    this.stopper = stopper;
    return true;
  }

  /** A result, its payload already JSON (the encoding stringifyMessage gives a next message). */
  nextJson(payloadJson: string): void {
    if (!this.ended) this.connection.send(nextFrame(this.idJson, payloadJson));
  }

  /** The operation could not run: one error message, and it has ended. */
  error(errors: readonly GraphQLError[]): void {
    if (!this.end()) return;
    this.connection.send(stringifyMessage<MessageType.Error>({ id: this.id, type: MessageType.Error, payload: errors.map((error) => error.toJSON()) }));
  }

  /** The server ended the operation: a complete message (if it was still open). */
  complete(): void {
    if (this.end()) this.connection.send(stringifyMessage<MessageType.Complete>({ id: this.id, type: MessageType.Complete }));
  }

  /** What its delivery gives back when it ends: the server completes the operation (see complete). */
  release(): void {
    this.complete();
  }

  /** Ended by the client or by the connection's close: nothing more is sent; its stopper is told. */
  stop(): void {
    if (!this.end()) return;
    const stopper = this.stopper;
    this.stopper = undefined;
    stopper?.stop();
  }

  /** Frees the id; false if it had ended already. */
  private end(): boolean {
    if (this.ended) return false;
    this.ended = true;
    const operations = this.connection.operations;
    if (operations?.get(this.id) === this) operations.delete(this.id);
    return true;
  }
}

/** A next message for the operation `idJson`: byte for byte what stringifyMessage gives for `{ id, type, payload }`. */
export function nextFrame(idJson: string, payloadJson: string): string {
  return `{"id":${idJson},"type":"next","payload":${payloadJson}}`;
}

/** A server-initiated ping (the token-expiry warning); a client answers with pong, which is ignored. */
export function pingFrame(payload: Record<string, unknown>): string {
  return stringifyMessage<MessageType.Ping>({ type: MessageType.Ping, payload });
}

export function createTransportWsProtocol<C extends ProtocolConnection>(handlers: ProtocolHandlers<C>) {
  const ackFrame = stringifyMessage<MessageType.ConnectionAck>(
    handlers.ackPayload ? { type: MessageType.ConnectionAck, payload: handlers.ackPayload } : { type: MessageType.ConnectionAck },
  );
  return {
    /**
     * A new connection: false (and closed with 4406) when the handshake agreed on another
     * subprotocol than graphql-transport-ws.
     */
    opened(connection: C): boolean {
      if (connection.protocol === GRAPHQL_TRANSPORT_WS_PROTOCOL) return true;
      connection.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return false;
    },

    /**
     * One text message from the client. Resolves when the message has been handled: for a
     * subscribe, when its operation has been decided (not when it ends).
     */
    async message(connection: C, text: string): Promise<void> {
      let message;
      try {
        message = parseMessage(text);
      } catch {
        return connection.close(CloseCode.BadRequest, 'Invalid message received');
      }
      switch (message.type) {
        case MessageType.ConnectionInit: {
          if (connection.initReceived) return connection.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
          connection.initReceived = true;
          const payload = typeof message.payload === 'object' && message.payload !== null ? message.payload : undefined;
          if (!(await handlers.connect(connection, payload))) return;
          connection.acknowledged = true;
          connection.send(ackFrame);
          return;
        }
        case MessageType.Ping:
          connection.send(stringifyMessage<MessageType.Pong>(message.payload ? { type: MessageType.Pong, payload: message.payload } : { type: MessageType.Pong }));
          return;
        case MessageType.Pong:
          return;
        case MessageType.Subscribe: {
          if (!connection.acknowledged) return connection.close(CloseCode.Unauthorized, 'Unauthorized');
          const operations = (connection.operations ??= new Map());
          if (operations.has(message.id)) return connection.close(CloseCode.SubscriberAlreadyExists, `Subscriber for ${message.id} already exists`);
          const operation = new WsOperation(connection, message.id);
          operations.set(message.id, operation);
          return handlers.subscribe(connection, operation, message.payload);
        }
        case MessageType.Complete: {
          const operation = connection.operations?.get(message.id);
          if (!operation) return;
          operation.stop();
          handlers.completedByClient?.(connection, operation);
          return;
        }
        default:
          // next, error, connection_ack: only the server sends them.
          return connection.close(CloseCode.BadRequest, 'Invalid message received');
      }
    },

    /** The connection closed: every operation still open is stopped. */
    closed(connection: C): void {
      const operations = connection.operations;
      if (!operations) return;
      connection.operations = undefined;
      for (const operation of operations.values()) operation.stop();
    },

    /** Operations in use on the connection (this one counted, when asked from `subscribe`). */
    operationCount: (connection: C): number => connection.operations?.size ?? 0,
  };
}

export type TransportWsProtocol = ReturnType<typeof createTransportWsProtocol>;
