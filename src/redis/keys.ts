/**
 * Access data in Redis, shared by every instance and owned by the domain services (documented in
 * docs/CHANNELS.md):
 *   {prefix}conversation:{id}:members   SET of user ids (the message service keeps it)
 *   {prefix}membership                  channel: JSON {conversationId, added?, removed?} on change
 *   {prefix}booking:{id}                HASH guestId, hostId (the booking service keeps it)
 *   {prefix}chat-session:{id}           HASH ownerId, createdAt, expiring after chatSessionTtlSeconds
 */
export const redisKeys = (prefix: string) => ({
  conversationMembers: (conversationId: string) => `${prefix}conversation:${conversationId}:members`,
  membershipChannel: () => `${prefix}membership`,
  bookingParties: (bookingId: string) => `${prefix}booking:${bookingId}`,
  chatSession: (sessionId: string) => `${prefix}chat-session:${sessionId}`,
});
