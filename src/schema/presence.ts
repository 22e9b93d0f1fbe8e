import { Repeater } from 'graphql-yoga';
import { REVOKED, guardStream, type Revoked } from '../bus/guarded-stream.js';
import { PRESENCE_CHANGES, type EventEnvelope } from '../events/contracts.js';
import { topics } from '../events/topics.js';
import { badUserInput, forbidden, serviceUnavailable } from '../errors.js';
import { hasRole } from '../auth/principal.js';
import { conversationScope, userScope } from '../presence/presence-store.js';
import { builder } from './builder.js';
import { requireId } from './common.js';
import type { GraphQLContext } from './context.js';

/**
 * Presence in the schema: `presence(conversationId)` (who of a conversation's members is there:
 * a snapshot, then coalesced JOINED / LEFT changes) and `userPresence(userIds)` (online anywhere,
 * for the people the viewer has to do with). What counts as present and how it is kept across
 * instances is src/presence/'s.
 */

interface PresenceChangeShape {
  readonly userId: string;
  readonly change: (typeof PRESENCE_CHANGES)[number];
  readonly at: string;
}

interface ConversationPresenceShape {
  readonly conversationId: string;
  readonly kind: 'SNAPSHOT' | 'CHANGES';
  readonly present: readonly string[] | null;
  readonly changes: readonly PresenceChangeShape[];
  readonly at: string;
}

interface UserPresenceShape {
  readonly userId: string;
  readonly online: boolean;
  readonly at: string;
}

const PresenceChangeKind = builder.enumType('PresenceChangeKind', { values: PRESENCE_CHANGES });
const PresenceUpdateKind = builder.enumType('PresenceUpdateKind', {
  values: {
    SNAPSHOT: { description: 'The first update: `present` lists every member present now.' },
    CHANGES: { description: 'Who joined or left since the previous update, in `changes`.' },
  },
});

const PresenceChange = builder.objectRef<PresenceChangeShape>('PresenceChange').implement({
  fields: (t) => ({
    userId: t.exposeID('userId'),
    change: t.field({ type: PresenceChangeKind, resolve: (change) => change.change }),
    at: t.field({ type: 'DateTime', resolve: (change) => change.at }),
  }),
});

const ConversationPresence = builder.objectRef<ConversationPresenceShape>('ConversationPresence').implement({
  description:
    "A conversation's presence: a member is present while a connection of theirs (any device, any instance) holds a newMessage, userTyping or presence subscription to it.",
  fields: (t) => ({
    conversationId: t.exposeID('conversationId'),
    kind: t.field({ type: PresenceUpdateKind, resolve: (update) => update.kind }),
    present: t.exposeIDList('present', { nullable: true, description: 'SNAPSHOT only: the members present now (the viewer among them).' }),
    changes: t.field({ type: [PresenceChange], description: 'CHANGES only: coalesced, at most one per user per update.', resolve: (update) => [...update.changes] }),
    at: t.field({ type: 'DateTime', resolve: (update) => update.at }),
  }),
});

const UserPresence = builder.objectRef<UserPresenceShape>('UserPresence').implement({
  description: 'Whether a user is online: a connection of theirs is open on any instance.',
  fields: (t) => ({
    userId: t.exposeID('userId'),
    online: t.exposeBoolean('online'),
    at: t.field({ type: 'DateTime', description: 'When this state was read or changed.', resolve: (presence) => presence.at }),
  }),
});

const nowIso = () => new Date().toISOString();

/**
 * Announcements of different instances can arrive out of order (each coalesces on its own timer):
 * a user's LEFT from the instance they left may come after their JOINED from the one they moved
 * to. A change older than one already seen for that user (by the announcing instance's clock, at
 * which the store reported it) is stale and skipped. One entry per user that changed.
 */
class LatestChanges {
  private readonly at = new Map<string, string>();

  isNewest(change: { readonly userId: string; readonly at: string }): boolean {
    const seen = this.at.get(change.userId);
    // ISO 8601 in UTC (toISOString) compares as text.
    if (seen !== undefined && change.at < seen) return false;
    this.at.set(change.userId, change.at);
    return true;
  }
}

/** A presence stream: ends with FORBIDDEN (REVOKED) when the viewer is removed from the conversation. */
function conversationPresenceStream(context: GraphQLContext, conversationId: string): AsyncIterableIterator<ConversationPresenceShape | Revoked> {
  const { principal, services } = context;
  if (principal.kind !== 'user') throw forbidden('Conversations are for members only');
  const userId = principal.userId;
  const scope = conversationScope(conversationId);
  const updates = new Repeater<ConversationPresenceShape>(async (push, stop) => {
    // Subscribing is itself being present; watching makes this instance announce the users of
    // instances that die.
    const hold = services.presence.hold(scope, userId);
    const watch = services.presence.watch(scope);
    const changes = services.bus.subscribe(topics.conversationPresence(conversationId));
    void stop.then(() => {
      hold.release();
      watch.release();
      void changes.return?.();
    });
    // Subscribed before the snapshot is read: a change in between comes after it, never lost.
    const first = changes.next();
    let present: string[];
    try {
      present = await services.presence.present(scope);
    } catch (error) {
      context.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'presence snapshot could not be read');
      stop(serviceUnavailable('Presence could not be read; subscribe again shortly'));
      return;
    }
    await push({ conversationId, kind: 'SNAPSHOT', present, changes: [], at: nowIso() });
    // Changes as this subscriber's view moves: one announced before the snapshot was read (the
    // viewer's own JOINED, often) changes nothing it showed, and is not repeated.
    const shown = new Set(present);
    const newest = new LatestChanges();
    for (let step = await first; !step.done; step = await changes.next()) {
      const event = step.value as EventEnvelope<'presenceChanged'>;
      const news = event.data.changes.filter(
        (change) => newest.isNewest(change) && (change.change === 'JOINED' ? !shown.has(change.userId) : shown.has(change.userId)),
      );
      for (const change of news) {
        if (change.change === 'JOINED') shown.add(change.userId);
        else shown.delete(change.userId);
      }
      if (news.length > 0) await push({ conversationId, kind: 'CHANGES', present: null, changes: news, at: event.occurredAt });
    }
  });
  const membership = services.directory.conversations;
  return guardStream(updates, {
    watchRevocation: (onRevoked) => membership.watchRemoval(conversationId, userId, onRevoked),
    stillAllowed: () => membership.isMember(conversationId, userId),
  });
}

builder.subscriptionField('presence', (t) =>
  t.field({
    type: ConversationPresence,
    description:
      "Who of a conversation's members is present: first a SNAPSHOT, then CHANGES (JOINED / LEFT, coalesced; a quick reconnect within PRESENCE_GRACE_MS is no change). Members only; ends with FORBIDDEN when the viewer is removed. Holding it counts the viewer as present.",
    args: { conversationId: t.arg.id({ required: true }) },
    authScopes: (_root, args) => ({ conversationMember: args.conversationId }),
    subscribe: (_root, args, context) => conversationPresenceStream(context, requireId(args.conversationId, 'conversationId')),
    resolve: (update) => {
      if (update === REVOKED) throw forbidden('You are no longer a member of this conversation');
      return update;
    },
  }),
);

/**
 * Refuses (FORBIDDEN) unless the viewer may see every one of these users' online state: their
 * own, that of the other members of `conversationId` (the viewer a member too), or that of the
 * other party of `bookingId` (the viewer its guest or host). Admins and services see anyone's.
 */
async function visibleUserIds(context: GraphQLContext, args: { userIds: readonly string[]; conversationId?: string | null; bookingId?: string | null }): Promise<string[]> {
  const { principal, services } = context;
  const { maxUserIds } = services.presence;
  if (args.userIds.length === 0 || args.userIds.length > maxUserIds) throw badUserInput(`userIds: give 1 to ${maxUserIds} user ids`);
  const userIds = [...new Set(args.userIds.map((userId, index) => requireId(userId, `userIds[${index}]`)))];
  if (args.conversationId && args.bookingId) throw badUserInput('give conversationId or bookingId, not both');
  if (principal.kind !== 'user') throw forbidden('Presence is for signed-in users');
  if (hasRole(principal, 'admin') || hasRole(principal, 'service')) return userIds;
  const others = userIds.filter((userId) => userId !== principal.userId);
  if (others.length === 0) return userIds;
  let visible = new Set<string>();
  if (args.conversationId) {
    const conversationId = requireId(args.conversationId, 'conversationId');
    const membership = services.directory.conversations;
    const members = await Promise.all([principal.userId, ...others].map((userId) => membership.isMember(conversationId, userId)));
    if (members[0]) visible = new Set(others.filter((_, index) => members[index + 1]));
  } else if (args.bookingId) {
    const parties = await services.directory.bookings.partiesOf(requireId(args.bookingId, 'bookingId'));
    if (parties && (parties.guestId === principal.userId || parties.hostId === principal.userId)) visible = new Set([parties.guestId, parties.hostId]);
  }
  const hidden = others.filter((userId) => !visible.has(userId));
  if (hidden.length > 0) {
    throw forbidden(
      `You may not see whether ${hidden.length === 1 ? 'this user is' : `${hidden.length} of these users are`} online (${hidden.slice(0, 5).join(', ')}${hidden.length > 5 ? ', …' : ''}): name a conversationId you share with them or a bookingId you are a party of`,
    );
  }
  return userIds;
}

async function onlineStates(context: GraphQLContext, userIds: readonly string[]): Promise<UserPresenceShape[]> {
  let online: Set<string>;
  try {
    online = await context.services.presence.online(userIds);
  } catch (error) {
    context.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'online states could not be read');
    throw serviceUnavailable('Presence could not be read; try again shortly');
  }
  const at = nowIso();
  return userIds.map((userId) => ({ userId, online: online.has(userId), at }));
}

builder.queryField('userPresence', (t) =>
  t.field({
    type: [UserPresence],
    description: `Whether these users are online now (at most PRESENCE_MAX_USER_IDS). Only users the viewer may see: itself, members of a conversationId it shares with them, the other party of a bookingId; any other is refused with FORBIDDEN.`,
    args: {
      userIds: t.arg.idList({ required: true }),
      conversationId: t.arg.id({ description: 'A conversation the viewer shares with them: its members may see each other.' }),
      bookingId: t.arg.id({ description: "A booking the viewer is a party of: its guest and host may see each other's." }),
    },
    authScopes: { authenticated: true },
    resolve: async (_root, args, context) => onlineStates(context, await visibleUserIds(context, args)),
  }),
);

builder.subscriptionField('userPresence', (t) =>
  t.field({
    type: UserPresence,
    description:
      'Whether these users are online: first their current state, one update each, then an update whenever one comes online or goes offline (a quick reconnect within PRESENCE_GRACE_MS is none). Same visibility rule as the query. Ends with FORBIDDEN when the viewer or one of these users is removed from the conversationId it named.',
    args: {
      userIds: t.arg.idList({ required: true }),
      conversationId: t.arg.id({ description: 'A conversation the viewer shares with them: its members may see each other.' }),
      bookingId: t.arg.id({ description: "A booking the viewer is a party of: its guest and host may see each other's." }),
    },
    authScopes: { authenticated: true },
    subscribe: async (_root, args, context) => {
      const userIds = await visibleUserIds(context, args);
      const { services } = context;
      const updates = new Repeater<UserPresenceShape>(async (push, stop) => {
        const watches = userIds.map((userId) => services.presence.watch(userScope(userId)));
        const streams = userIds.map((userId) => services.bus.subscribe(topics.userPresence(userId)));
        void stop.then(() => {
          for (const watch of watches) watch.release();
          for (const stream of streams) void stream.return?.();
        });
        // Subscribed first (the first next() subscribes): a change while the states are read comes after them.
        const firsts = streams.map((stream) => stream.next());
        let states: UserPresenceShape[];
        try {
          states = await onlineStates(context, userIds);
        } catch (error) {
          stop(error);
          return;
        }
        for (const state of states) await push(state);
        // Only what changes the state this subscriber was shown.
        const shown = new Map(states.map((state) => [state.userId, state.online]));
        const newest = new LatestChanges();
        await Promise.all(
          streams.map(async (stream, index) => {
            for (let step = await firsts[index]; step && !step.done; step = await stream.next()) {
              const event = step.value as EventEnvelope<'presenceChanged'>;
              for (const change of event.data.changes) {
                // Only this stream's own user's state.
                if (change.userId !== userIds[index] || !newest.isNewest(change)) continue;
                const online = change.change === 'JOINED';
                if (shown.get(change.userId) === online) continue;
                shown.set(change.userId, online);
                await push({ userId: change.userId, online, at: change.at });
              }
            }
          }),
        );
      });
      if (!args.conversationId || context.principal.kind !== 'user') return updates;
      // Seen as co-members: the subscription ends (FORBIDDEN) when the viewer or any of them is
      // removed from the conversation.
      const membership = services.directory.conversations;
      const conversationId = args.conversationId;
      const members = [...new Set([context.principal.userId, ...userIds])];
      return guardStream(updates, {
        watchRevocation: (onRevoked) => {
          const unwatch = members.map((member) => membership.watchRemoval(conversationId, member, onRevoked));
          return () => unwatch.forEach((stop) => stop());
        },
        stillAllowed: async () => (await Promise.all(members.map((member) => membership.isMember(conversationId, member)))).every(Boolean),
      });
    },
    resolve: (update: UserPresenceShape | Revoked) => {
      if (update === REVOKED) throw forbidden('You and these users no longer share this conversation');
      return update;
    },
  }),
);
