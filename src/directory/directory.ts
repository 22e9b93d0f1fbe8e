/**
 * What the gateway asks the domain services about access. The gateway stores no domain data:
 * membership and booking parties are owned upstream (the message and booking services) and
 * reach the gateway through service mutations or, with Redis, keys those services maintain.
 */

export type Unsubscribe = () => void;

export interface ConversationMembership {
  isMember(conversationId: string, userId: string): Promise<boolean>;
  addMembers(conversationId: string, userIds: readonly string[]): Promise<void>;
  removeMembers(conversationId: string, userIds: readonly string[]): Promise<void>;
  /**
   * Calls `onRemoved` once if `userId` stops being a member of `conversationId` (on any
   * instance). Subscriptions use it to end a removed member's streams at once.
   */
  watchRemoval(conversationId: string, userId: string, onRemoved: () => void): Unsubscribe;
}

export interface BookingParties {
  readonly guestId: string;
  readonly hostId: string;
}

export interface BookingDirectory {
  partiesOf(bookingId: string): Promise<BookingParties | undefined>;
  setParties(bookingId: string, parties: BookingParties): Promise<void>;
}

export interface ChatSession {
  readonly id: string;
  readonly ownerId: string;
  readonly createdAt: string;
}

export interface ChatSessionDirectory {
  create(ownerId: string): Promise<ChatSession>;
  get(sessionId: string): Promise<ChatSession | undefined>;
}

export interface AccessDirectory {
  readonly conversations: ConversationMembership;
  readonly bookings: BookingDirectory;
  readonly chatSessions: ChatSessionDirectory;
  /** False until change notifications can arrive (Redis: the membership channel is subscribed). */
  isReady(): boolean;
  close(): Promise<void>;
}
