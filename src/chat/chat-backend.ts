import type { EventPublisher } from '../publish/event-publisher.js';

export interface ChatMessage {
  readonly sessionId: string;
  readonly userId: string;
  readonly messageId: string;
  readonly text: string;
}

/** Where `sendChatMessage` hands a user's text. The reply arrives as chatResponse events. */
export interface ChatBackend {
  handle(message: ChatMessage): Promise<void>;
  /** Waits for replies still being streamed (graceful shutdown). */
  drain(): Promise<void>;
}

/**
 * Publishes the message as a `chatMessageSent` event for an external assistant service, which
 * answers by publishing `chatResponse` events (mutation or Redis). See docs/CHANNELS.md.
 */
export function createExternalChatBackend(publisher: EventPublisher): ChatBackend {
  return {
    async handle(message) {
      await publisher.publish('chatMessageSent', { ...message });
    },
    async drain() {},
  };
}
