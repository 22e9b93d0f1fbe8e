import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { membershipChangeSchema, parseChannelMessage, parseChannelMessageBytes, type MembershipChange } from '../events/contracts.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { serviceUnavailable } from '../errors.js';
import type { RedisConnections } from '../redis/connections.js';
import { redisKeys } from '../redis/keys.js';
import { RemovalWatchers } from './removal-watchers.js';
import type { AccessDirectory, BookingDirectory, ChatSessionDirectory, ConversationMembership } from './directory.js';

export interface RedisDirectoryOptions {
  readonly connections: RedisConnections;
  readonly prefix: string;
  /** How long a membership answer is trusted without a change notification. */
  readonly membershipCacheMs: number;
  readonly chatSessionTtlSeconds: number;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly now?: () => Date;
}

/** SISMEMBER attempts per isMember call while changes to that member keep overtaking the reply. */
const MAX_MEMBERSHIP_READS = 3;

function createRedisMembership(options: RedisDirectoryOptions): ConversationMembership & { start(): void; stop(): void; isSubscribed(): boolean } {
  const { connections, logger, metrics } = options;
  const keys = redisKeys(options.prefix);
  const channel = keys.membershipChannel();
  const cache = new LRUCache<string, boolean>({ max: 50_000, ttl: options.membershipCacheMs });
  const watchers = new RemovalWatchers();
  const keyOf = (conversationId: string, userId: string) => `${conversationId}\u0000${userId}`;
  /**
   * A version per member with a SISMEMBER in flight, bumped by every change to that member: a
   * reply may have been computed before a change that was handled while it was in flight, and
   * must not overwrite the change's cache entry. Only keys being read have an entry (removed when
   * the last read ends), so this stays as small as the number of concurrent reads.
   */
  const inFlight = new Map<string, { readers: number; version: number }>();
  const changed = (key: string) => {
    const entry = inFlight.get(key);
    if (entry) entry.version++;
  };

  const applyChange = (raw: string | Buffer) => {
    const change = typeof raw === 'string' ? parseChannelMessage(raw, membershipChangeSchema) : parseChannelMessageBytes(raw, membershipChangeSchema);
    if (!change.ok) {
      metrics.eventsDropped.inc({ reason: change.reason, source: 'membership' });
      logger.warn({ channel, issues: change.issues }, 'dropped an invalid membership change');
      return;
    }
    const { conversationId, added, removed } = change.data;
    for (const userId of added) {
      changed(keyOf(conversationId, userId));
      cache.delete(keyOf(conversationId, userId));
    }
    for (const userId of removed) {
      changed(keyOf(conversationId, userId));
      cache.set(keyOf(conversationId, userId), false);
      try {
        watchers.notifyRemoved(conversationId, userId);
      } catch (error) {
        // Called from ioredis' message event: a throw would take the process down.
        logger.error({ err: error, conversationId, userId }, 'ending a removed member’s subscriptions failed');
      }
    }
  };

  // As bytes (`messageBuffer`): invalid UTF-8 is refused, not decoded into U+FFFD.
  const onMessage = (messageChannel: Buffer, message: Buffer) => {
    if (messageChannel.toString('utf8') === channel) applyChange(message);
  };

  /** Changes the members set and announces it atomically: both happen, or neither. */
  const changeMembers = async (conversationId: string, change: 'add' | 'remove', userIds: readonly string[]) => {
    const key = keys.conversationMembers(conversationId);
    const announcement: MembershipChange = change === 'add' ? { conversationId, added: [...userIds] } : { conversationId, removed: [...userIds] };
    const transaction = connections.commands.multi();
    if (change === 'add') transaction.sadd(key, ...userIds);
    else transaction.srem(key, ...userIds);
    const results = await transaction.publish(channel, JSON.stringify(announcement)).exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw failed?.[0] ?? new Error('membership transaction aborted');
  };

  /**
   * Changes announced while this instance was cut off from Redis were missed: after a reconnect,
   * forget cached answers and re-check every member who has a live subscription.
   */
  const revalidateAfterReconnect = async () => {
    // Replies still in flight may predate a change that was missed, like the cached answers.
    for (const entry of inFlight.values()) entry.version++;
    cache.clear();
    for (const { conversationId, userId } of watchers.watchedMembers()) {
      try {
        const stillMember = (await connections.commands.sismember(keys.conversationMembers(conversationId), userId)) === 1;
        if (!stillMember) applyChange(JSON.stringify({ conversationId, removed: [userId] }));
      } catch (error) {
        logger.warn({ err: error, conversationId }, 'membership re-check after reconnect failed');
      }
    }
  };
  let subscribed = false;
  let subscriberConnectedBefore = false;
  let commandsConnectedBefore = false;
  let revalidationPending = false;
  const revalidateWhenPossible = () => {
    if (connections.commands.status === 'ready') void revalidateAfterReconnect();
    else revalidationPending = true;
  };
  const subscribeToChanges = () =>
    connections.subscriber.subscribe(channel).then(
      () => {
        subscribed = true;
      },
      (error: unknown) => logger.error({ err: error, channel }, 'redis SUBSCRIBE to the membership channel failed'),
    );
  // The subscriber connection can drop on its own (Redis disconnects pub/sub clients that fall
  // behind): once it is back and the channel is live again, anything announced meanwhile was
  // missed, so re-check.
  const onSubscriberReady = () => {
    if (!subscriberConnectedBefore) {
      subscriberConnectedBefore = true;
      return;
    }
    subscribed = false;
    void subscribeToChanges().then(() => subscribed && revalidateWhenPossible());
  };
  const onSubscriberClose = () => {
    subscribed = false;
  };
  const onCommandsReady = () => {
    if (revalidationPending || commandsConnectedBefore) {
      revalidationPending = false;
      void revalidateAfterReconnect();
    }
    commandsConnectedBefore = true;
  };

  return {
    start() {
      connections.subscriber.on('messageBuffer', onMessage);
      connections.subscriber.on('ready', onSubscriberReady);
      connections.subscriber.on('close', onSubscriberClose);
      connections.commands.on('ready', onCommandsReady);
      if (connections.commands.status === 'ready') commandsConnectedBefore = true;
      if (connections.subscriber.status === 'ready') subscriberConnectedBefore = true;
      // Queued by the subscriber connection until Redis is reachable; never blocks start-up.
      void subscribeToChanges();
    },
    isSubscribed: () => subscribed,
    stop() {
      connections.subscriber.off('messageBuffer', onMessage);
      connections.subscriber.off('ready', onSubscriberReady);
      connections.subscriber.off('close', onSubscriberClose);
      connections.commands.off('ready', onCommandsReady);
    },
    async isMember(conversationId, userId) {
      const key = keyOf(conversationId, userId);
      for (let attempt = 1; ; attempt++) {
        const cached = cache.get(key);
        if (cached !== undefined) return cached;
        // Registered before SISMEMBER is sent: a change handled earlier is already in Redis when
        // it runs; one handled later bumps the version.
        let entry = inFlight.get(key);
        if (!entry) inFlight.set(key, (entry = { readers: 0, version: 0 }));
        entry.readers++;
        const version = entry.version;
        let isMember: boolean;
        try {
          isMember = (await connections.commands.sismember(keys.conversationMembers(conversationId), userId)) === 1;
        } finally {
          if (--entry.readers === 0) inFlight.delete(key);
        }
        if (entry.version === version) {
          cache.set(key, isMember);
          return isMember;
        }
        // The reply may predate the change: a removal left `false` in the cache (the next turn
        // returns it), an addition left nothing, so ask again, from after the change. Endless
        // churn on this one member fails closed rather than trusting a possibly stale `true`.
        if (attempt === MAX_MEMBERSHIP_READS) return cache.get(key) ?? false;
      }
    },
    addMembers: (conversationId, userIds) => changeMembers(conversationId, 'add', userIds),
    // Every instance (this one included, through its subscription) ends the removed members' streams.
    removeMembers: (conversationId, userIds) => changeMembers(conversationId, 'remove', userIds),
    watchRemoval: (conversationId, userId, onRemoved) => watchers.watch(conversationId, userId, onRemoved),
  };
}

function createRedisBookings(options: RedisDirectoryOptions): BookingDirectory {
  const keys = redisKeys(options.prefix);
  const commands = options.connections.commands;
  return {
    async partiesOf(bookingId) {
      const [guestId, hostId] = await commands.hmget(keys.bookingParties(bookingId), 'guestId', 'hostId');
      return guestId && hostId ? { guestId, hostId } : undefined;
    },
    async setParties(bookingId, parties) {
      await commands.hset(keys.bookingParties(bookingId), { guestId: parties.guestId, hostId: parties.hostId });
    },
  };
}

function createRedisChatSessions(options: RedisDirectoryOptions): ChatSessionDirectory {
  const keys = redisKeys(options.prefix);
  const commands = options.connections.commands;
  const now = options.now ?? (() => new Date());
  return {
    async create(ownerId) {
      const session = { id: randomUUID(), ownerId, createdAt: now().toISOString() };
      const key = keys.chatSession(session.id);
      await commands.multi().hset(key, { ownerId, createdAt: session.createdAt }).expire(key, options.chatSessionTtlSeconds).exec();
      return session;
    },
    async get(sessionId) {
      const key = keys.chatSession(sessionId);
      const [ownerId, createdAt] = await commands.hmget(key, 'ownerId', 'createdAt');
      if (!ownerId || !createdAt) return undefined;
      // Sessions in use stay alive; idle ones expire.
      await commands.expire(key, options.chatSessionTtlSeconds);
      return { id: sessionId, ownerId, createdAt };
    },
  };
}

/**
 * Redis failures (outage, timeout) become SERVICE_UNAVAILABLE for the client instead of a masked
 * internal error: the request was fine, the backend was not.
 */
function unavailableOnFailure<T extends object>(target: T, logger: Logger): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = (value as (...args: unknown[]) => unknown).apply(object, args);
        if (!(result instanceof Promise)) return result;
        return result.catch((error: unknown) => {
          logger.warn({ err: error instanceof Error ? error.message : String(error), operation: String(property) }, 'redis directory call failed');
          throw serviceUnavailable();
        });
      };
    },
  });
}

export function createRedisDirectory(options: RedisDirectoryOptions): AccessDirectory {
  const conversations = createRedisMembership(options);
  conversations.start();
  return {
    conversations: unavailableOnFailure(conversations, options.logger),
    bookings: unavailableOnFailure(createRedisBookings(options), options.logger),
    chatSessions: unavailableOnFailure(createRedisChatSessions(options), options.logger),
    isReady: () => conversations.isSubscribed() && options.connections.isReady(),
    async close() {
      conversations.stop();
    },
  };
}
