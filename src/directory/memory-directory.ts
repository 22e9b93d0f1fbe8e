import { randomUUID } from 'node:crypto';
import type {
  AccessDirectory,
  BookingDirectory,
  BookingParties,
  ChatSession,
  ChatSessionDirectory,
  ConversationMembership,
} from './directory.js';
import { RemovalWatchers } from './removal-watchers.js';

function createMemoryMembership(): ConversationMembership {
  const members = new Map<string, Set<string>>();
  const removalWatchers = new RemovalWatchers();

  return {
    async isMember(conversationId, userId) {
      return members.get(conversationId)?.has(userId) ?? false;
    },
    async addMembers(conversationId, userIds) {
      let set = members.get(conversationId);
      if (!set) members.set(conversationId, (set = new Set()));
      for (const userId of userIds) set.add(userId);
    },
    async removeMembers(conversationId, userIds) {
      const set = members.get(conversationId);
      let failed = false;
      let failure: unknown;
      for (const userId of userIds) {
        set?.delete(userId);
        try {
          removalWatchers.notifyRemoved(conversationId, userId);
        } catch (error) {
          // Every member is still removed and told; the first failure fails the call (it is ours).
          if (!failed) failure = error;
          failed = true;
        }
      }
      if (set?.size === 0) members.delete(conversationId);
      if (failed) throw failure;
    },
    watchRemoval: (conversationId, userId, onRemoved) => removalWatchers.watch(conversationId, userId, onRemoved),
  };
}

function createMemoryBookings(): BookingDirectory {
  const parties = new Map<string, BookingParties>();
  return {
    async partiesOf(bookingId) {
      return parties.get(bookingId);
    },
    async setParties(bookingId, bookingParties) {
      parties.set(bookingId, { guestId: bookingParties.guestId, hostId: bookingParties.hostId });
    },
  };
}

/**
 * The in-memory mode keeps a user's newest MAX_SESSIONS_PER_OWNER chat sessions: one user can
 * only ever push out their own old sessions, never someone else's.
 */
export const MAX_SESSIONS_PER_OWNER = 20;

function createMemoryChatSessions(now: () => Date): ChatSessionDirectory {
  const sessions = new Map<string, ChatSession>();
  const sessionIdsByOwner = new Map<string, string[]>();
  return {
    async create(ownerId) {
      const session = { id: randomUUID(), ownerId, createdAt: now().toISOString() };
      let owned = sessionIdsByOwner.get(ownerId);
      if (!owned) sessionIdsByOwner.set(ownerId, (owned = []));
      owned.push(session.id);
      if (owned.length > MAX_SESSIONS_PER_OWNER) sessions.delete(owned.shift() as string);
      sessions.set(session.id, session);
      return session;
    },
    async get(sessionId) {
      return sessions.get(sessionId);
    },
  };
}

/** Process-local directory for the single-instance (no Redis) mode and for schema tests. */
export function createMemoryDirectory(now: () => Date = () => new Date()): AccessDirectory {
  return {
    conversations: createMemoryMembership(),
    bookings: createMemoryBookings(),
    chatSessions: createMemoryChatSessions(now),
    isReady: () => true,
    async close() {},
  };
}
