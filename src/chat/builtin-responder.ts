import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { EventPublisher } from '../publish/event-publisher.js';
import type { ChatBackend, ChatMessage } from './chat-backend.js';

/**
 * The deterministic reply the built-in responder gives: no model, no network. It exists so the
 * gateway can run and demo chat on its own; CHAT_RESPONDER=external hands messages to a real
 * assistant service instead.
 */
export function builtinReplyTo(text: string): string {
  const trimmed = text.trim().replace(/\s+/g, ' ');
  const words = trimmed.split(' ').length;
  const quoted = trimmed.length > 120 ? `${trimmed.slice(0, 117)}...` : trimmed;
  return (
    `You said: "${quoted}" (${words} ${words === 1 ? 'word' : 'words'}). ` +
    'I am the built-in Tidings responder, so I can only echo. ' +
    'Set CHAT_RESPONDER=external to let your assistant service answer.'
  );
}

/** Splits a reply into chunks of a few words, as a streaming model would produce them. */
export function chunkReply(reply: string, wordsPerChunk = 4): string[] {
  const words = reply.split(' ');
  const chunks: string[] = [];
  for (let index = 0; index < words.length; index += wordsPerChunk) {
    const isLast = index + wordsPerChunk >= words.length;
    chunks.push(words.slice(index, index + wordsPerChunk).join(' ') + (isLast ? '' : ' '));
  }
  return chunks;
}

export function createBuiltinChatResponder(deps: {
  publisher: EventPublisher;
  logger: Logger;
  chunkDelayMs: number;
}): ChatBackend {
  const inFlight = new Set<Promise<void>>();

  async function respond(message: ChatMessage): Promise<void> {
    const replyId = randomUUID();
    let sequence = 0;
    const emit = (status: 'TYPING' | 'CHUNK' | 'DONE' | 'ERROR', text: string | null = null) =>
      deps.publisher.publish(
        'chatResponse',
        { sessionId: message.sessionId, userId: message.userId, replyId, sequence: sequence++, status, text },
        { source: 'chat_responder' },
      );
    try {
      await emit('TYPING');
      for (const chunk of chunkReply(builtinReplyTo(message.text))) {
        await sleep(deps.chunkDelayMs);
        await emit('CHUNK', chunk);
      }
      await emit('DONE');
    } catch (error) {
      deps.logger.warn({ err: error, sessionId: message.sessionId, replyId }, 'built-in chat reply failed');
      await emit('ERROR', 'The assistant could not finish this reply.').catch(() => undefined);
    }
  }

  return {
    async handle(message) {
      // The reply streams in the background: sendChatMessage returns as soon as it is accepted.
      const reply = respond(message).finally(() => inFlight.delete(reply));
      inFlight.add(reply);
    },
    async drain() {
      await Promise.all(inFlight);
    },
  };
}
