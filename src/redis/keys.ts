/**
 * Access data in Redis, shared by every instance and owned by the domain services (documented in
 * docs/CHANNELS.md):
 *   {prefix}conversation:{id}:members   SET of user ids (the message service keeps it)
 *   {prefix}membership                  channel: JSON {conversationId, added?, removed?} on change
 *   {prefix}booking:{id}                HASH guestId, hostId (the booking service keeps it)
 *   {prefix}chat-session:{id}           HASH ownerId, createdAt, expiring after chatSessionTtlSeconds
 * Kept by the gateway itself:
 *   {prefix}sessions-revoked:{userId}   epoch ms of the user's latest session revocation (expires)
 *   {prefix}sessions:revoked            channel: JSON {userId, revokedAt, reason?} on revocation
 *   {prefix}quota:{kind}:{holder}       HASH instance → count: connections, subscriptions per user id;
 *                                       address-connections, address-subscriptions per anonymous address
 *   {prefix}instance:{holder}           set while the instance holding quota counts is alive
 *   {prefix}ratelimit:{budget}:{key}    ZSET sliding-window log of one rate-limit budget
 *   {prefix}published:{eventId}         set (expiring) once an ingress event went out, so a
 *                                       redelivered RabbitMQ message is not published twice
 *   {prefix}presence:{<scope>}:entries  ZSET member <userId>|<instanceId>, score its expiry (epoch ms,
 *                                       Redis clock); scope is conversation:<id> or user:<id>, and
 *                                       {…} a Cluster hash tag (src/presence/redis-presence-store.ts)
 *   {prefix}presence:{<scope>}:users    HASH userId → number of entries (instances holding the user)
 */
export const redisKeys = (prefix: string) => ({
  conversationMembers: (conversationId: string) => `${prefix}conversation:${conversationId}:members`,
  membershipChannel: () => `${prefix}membership`,
  bookingParties: (bookingId: string) => `${prefix}booking:${bookingId}`,
  chatSession: (sessionId: string) => `${prefix}chat-session:${sessionId}`,
  sessionsRevoked: (userId: string) => `${prefix}sessions-revoked:${userId}`,
  sessionRevocationChannel: () => `${prefix}sessions:revoked`,
  quota: (kind: string, holder: string) => `${prefix}quota:${kind}:${holder}`,
  instanceAlive: (holder: string) => `${prefix}instance:${holder}`,
  rateLimit: (budget: string, key: string) => `${prefix}ratelimit:${budget}:${key}`,
  publishedEvent: (eventId: string) => `${prefix}published:${eventId}`,
  presenceEntries: (scope: string) => `${prefix}presence:{${scope}}:entries`,
  presenceUsers: (scope: string) => `${prefix}presence:{${scope}}:users`,
});
