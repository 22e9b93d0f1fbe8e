import type { EventType, TidingsEvent } from './contracts.js';

/** A topic name that carries, in its type, the one event type published on it. */
export type Topic<T extends EventType> = string & { readonly __eventType?: T };

/**
 * Topic names. One topic per hotel, conversation, user or chat session, never one global topic
 * filtered per subscriber. With Redis each topic is one channel: `${REDIS_PREFIX}${topic}`.
 * Ids are validated by idSchema (no `:`), and every kind of topic has its own first segment, so
 * two different topics never share a name.
 */
export const topics = {
  hotelPrices: (hotelId: string): Topic<'priceUpdated'> => `price:${hotelId}`,
  conversationMessages: (conversationId: string): Topic<'newMessage'> => `conversation:${conversationId}:message`,
  conversationTyping: (conversationId: string): Topic<'userTyping'> => `conversation:${conversationId}:typing`,
  /** Booking updates go to both parties' topics; a subscriber filters by booking when asked to. */
  userBookings: (userId: string): Topic<'bookingUpdated'> => `user:${userId}:booking`,
  userNotifications: (userId: string): Topic<'notificationCreated'> => `user:${userId}:notification`,
  chatSession: (sessionId: string): Topic<'chatResponse'> => `chat-session:${sessionId}`,
  /** Presence changes (presenceChanged) of a conversation's members. */
  conversationPresence: (conversationId: string): Topic<'presenceChanged'> => `conversation:${conversationId}:presence`,
  /** A user's own online state (presenceChanged with scope `user`). */
  userPresence: (userId: string): Topic<'presenceChanged'> => `user:${userId}:presence`,
  /** Users' chat messages, for an external assistant service (CHAT_RESPONDER=external). */
  chatRequests: (): Topic<'chatMessageSent'> => 'chat-requests',
} as const;

/** The topics an event is published on. The Redis ingress also uses this to check the channel. */
export function topicsOf(event: TidingsEvent): readonly string[] {
  switch (event.type) {
    case 'priceUpdated':
      return [topics.hotelPrices(event.data.hotelId)];
    case 'newMessage':
      return [topics.conversationMessages(event.data.conversationId)];
    case 'userTyping':
      return [topics.conversationTyping(event.data.conversationId)];
    case 'bookingUpdated': {
      const { guestId, hostId } = event.data;
      return guestId === hostId
        ? [topics.userBookings(guestId)]
        : [topics.userBookings(guestId), topics.userBookings(hostId)];
    }
    case 'notificationCreated':
      return [topics.userNotifications(event.data.userId)];
    case 'chatResponse':
      return [topics.chatSession(event.data.sessionId)];
    case 'chatMessageSent':
      return [topics.chatRequests()];
    case 'presenceChanged':
      return [event.data.scope === 'conversation' ? topics.conversationPresence(event.data.scopeId) : topics.userPresence(event.data.scopeId)];
  }
}
