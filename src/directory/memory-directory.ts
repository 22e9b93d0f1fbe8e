import { randomUUID } from 'node:crypto';
import type {
  AccessDirectory,
  BookingDirectory,
  BookingParties,
  ChatSession,
  ChatSessionDirectory,
  ConversationMembership,
} from './directory.js';

const membershipKey = (conversationId: string, userId: string) => `${conversationId}\u0000${userId}`;

function createMemoryMembership(): ConversationMembership {
  const members = new Map<string, Set<string>>();
  const removalWatchers = new Map<string, Set<() => void>>();

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
      for (const userId of userIds) {
        set?.delete(userId);
        const key = membershipKey(conversationId, userId);
        const watchers = removalWatchers.get(key);
        removalWatchers.delete(key);
        for (const watcher of watchers ?? []) watcher();
      }
      if (set?.size === 0) members.delete(conversationId);
    },
    watchRemoval(conversationId, userId, onRemoved) {
      const key = membershipKey(conversationId, userId);
      let watchers = removalWatchers.get(key);
      if (!watchers) removalWatchers.set(key, (watchers = new Set()));
      watchers.add(onRemoved);
      return () => {
        watchers.delete(onRemoved);
        if (watchers.size === 0 && removalWatchers.get(key) === watchers) removalWatchers.delete(key);
      };
    },
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
