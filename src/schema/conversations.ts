import { REVOKED, guardStream, type Revoked, type StreamGuard } from '../bus/guarded-stream.js';
import type { EventEnvelope, EventType, TidingsEvent } from '../events/contracts.js';
import { TYPING_STATES } from '../events/contracts.js';
import type { Topic } from '../events/topics.js';
import { topics } from '../events/topics.js';
import { badUserInput, forbidden } from '../errors.js';
import { builder } from './builder.js';
import type { DeliveryExtension } from './delivery.js';
import type { GraphQLContext } from './context.js';
import { eventObjectRef, PublishReceipt, receiptOf, receiptsOf, requireId } from './common.js';
import { conversationScope } from '../presence/presence-store.js';

export const Message = eventObjectRef('Message', 'newMessage');
builder.objectFields(Message, (t) => ({
  messageId: t.id({ description: 'The message id given by the message service.', resolve: (event) => event.data.messageId }),
  conversationId: t.id({ resolve: (event) => event.data.conversationId }),
  senderId: t.id({ resolve: (event) => event.data.senderId }),
  text: t.string({ resolve: (event) => event.data.text }),
}));

const TypingState = builder.enumType('TypingState', { values: TYPING_STATES });

export const TypingEvent = eventObjectRef('TypingEvent', 'userTyping');
builder.objectFields(TypingEvent, (t) => ({
  conversationId: t.id({ resolve: (event) => event.data.conversationId }),
  userId: t.id({ resolve: (event) => event.data.userId }),
  state: t.field({ type: TypingState, resolve: (event) => event.data.state }),
}));

/**
 * A conversation stream for one member: ends with a FORBIDDEN error the moment the member is
 * removed (on any instance), and optionally filters events.
 */
function memberStream<T extends EventType>(
  context: GraphQLContext,
  conversationId: string,
  topic: Topic<T>,
  accept?: (event: EventEnvelope<T>) => boolean,
): AsyncIterableIterator<EventEnvelope<T> | Revoked> {
  const { principal, services, sharedDelivery } = context;
  if (principal.kind !== 'user') throw forbidden('Conversations are for members only');
  const membership = services.directory.conversations;
  const userId = principal.userId;
  const guard: StreamGuard<EventEnvelope<T>> = {
    accept,
    watchRevocation: (onRevoked) => membership.watchRemoval(conversationId, userId, onRevoked),
    stillAllowed: () => membership.isMember(conversationId, userId),
  };
  // A member with a subscription to the conversation is present in it (src/presence/), for as
  // long as the subscription is open.
  const presence = services.presence.hold(conversationScope(conversationId), userId);
  // With a shared delivery the member joins the conversation's group and its guard is its own: a
  // removal ends this member's subscriptions only. (The topic carries only EventEnvelope<T>, so
  // the guard sees nothing else.) What it holds is given back when the member ends.
  if (sharedDelivery) {
    sharedDelivery.holdUntilEnded(presence);
    return sharedDelivery.nameTopic(topic, guard as StreamGuard<TidingsEvent>);
  }
  return releasingOnEnd(guardStream(services.bus.subscribe(topic), guard), presence);
}

/** The stream, releasing `held` when it ends (returned by its consumer, or done). */
function releasingOnEnd<T>(source: AsyncIterableIterator<T>, held: { release(): void }): AsyncIterableIterator<T> {
  return {
    next: async () => {
      const step = await source.next();
      if (step.done) held.release();
      return step;
    },
    return: async (value?: unknown) => {
      held.release();
      return (await source.return?.(value)) ?? { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

function unlessRevoked<T>(value: T | Revoked): T {
  if (value === REVOKED) throw forbidden('You are no longer a member of this conversation');
  return value;
}

builder.subscriptionField('newMessage', (t) =>
  t.field({
    type: Message,
    description: 'Messages in a conversation. Members only; ends with FORBIDDEN when the viewer is removed.',
    args: { conversationId: t.arg.id({ required: true }) },
    // Shared by the conversation's members (its guard is each member's own).
    extensions: { delivery: { shareable: true } satisfies DeliveryExtension },
    authScopes: (_root, args) => ({ conversationMember: args.conversationId }),
    subscribe: (_root, args, context) => {
      const conversationId = requireId(args.conversationId, 'conversationId');
      return memberStream(context, conversationId, topics.conversationMessages(conversationId));
    },
    resolve: unlessRevoked,
  }),
);

builder.subscriptionField('userTyping', (t) =>
  t.field({
    type: TypingEvent,
    description: "Other members' typing state in a conversation. Members only; the viewer's own events are not echoed.",
    args: { conversationId: t.arg.id({ required: true }) },
    // Shared by the conversation's members (its guard, not echoing one's own typing, is each
    // member's own); a member's new typing state replaces the previous one.
    extensions: { delivery: { shareable: true, conflateBy: 'userId' } satisfies DeliveryExtension },
    authScopes: (_root, args) => ({ conversationMember: args.conversationId }),
    subscribe: (_root, args, context) => {
      const conversationId = requireId(args.conversationId, 'conversationId');
      const viewerId = context.principal.kind === 'user' ? context.principal.userId : undefined;
      return memberStream(context, conversationId, topics.conversationTyping(conversationId), (event) => event.data.userId !== viewerId);
    },
    resolve: unlessRevoked,
  }),
);

const PublishMessageInput = builder.inputType('PublishMessageInput', {
  fields: (t) => ({
    messageId: t.id({ required: true, description: "The message service's id for the message." }),
    conversationId: t.id({ required: true }),
    senderId: t.id({ required: true }),
    text: t.string({ required: true }),
    occurredAt: t.field({ type: 'DateTime', description: 'When the message was sent; defaults to now.' }),
  }),
});

builder.mutationField('publishMessage', (t) =>
  t.field({
    type: PublishReceipt,
    description: 'Publishes a stored message to the members subscribed to its conversation. Role `service`.',
    args: { input: t.arg({ type: PublishMessageInput, required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { input }, { services, traceparent }) => {
      const { occurredAt, ...data } = input;
      return receiptOf(await services.publisher.publish('newMessage', data, { occurredAt: occurredAt ?? undefined, traceparent }));
    },
  }),
);

builder.mutationField('publishMessages', (t) =>
  t.field({
    type: [PublishReceipt],
    nullable: { list: false, items: true },
    description:
      'Publishes many stored messages in one request and one round trip to the bus, in order (at most PUBLISH_MAX_BATCH); an invalid item is null with a BAD_USER_INPUT error naming its index, the others are published. Role `service`.',
    args: { inputs: t.arg({ type: [PublishMessageInput], required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { inputs }, { services, traceparent }) =>
      receiptsOf(await services.publisher.publishMany('newMessage', inputs.map(({ occurredAt, ...data }) => ({ data, occurredAt: occurredAt ?? undefined })), { traceparent })),
  }),
);

function requireIds(userIds: readonly string[]): string[] {
  if (userIds.length === 0 || userIds.length > 1_000) throw badUserInput('userIds: give 1 to 1000 user ids');
  return userIds.map((userId, index) => requireId(userId, `userIds[${index}]`));
}

builder.mutationField('addConversationMembers', (t) =>
  t.boolean({
    description: 'Records that users belong to a conversation (kept by the message service). Role `service`.',
    args: { conversationId: t.arg.id({ required: true }), userIds: t.arg.idList({ required: true }) },
    authScopes: { service: true },
    resolve: async (_root, args, { services }) => {
      const conversationId = requireId(args.conversationId, 'conversationId');
      await services.directory.conversations.addMembers(conversationId, requireIds(args.userIds));
      return true;
    },
  }),
);

builder.mutationField('removeConversationMembers', (t) =>
  t.boolean({
    description:
      "Removes users from a conversation. Their open newMessage/userTyping subscriptions to it end at once with FORBIDDEN. Role `service`.",
    args: { conversationId: t.arg.id({ required: true }), userIds: t.arg.idList({ required: true }) },
    authScopes: { service: true },
    resolve: async (_root, args, { services }) => {
      const conversationId = requireId(args.conversationId, 'conversationId');
      await services.directory.conversations.removeMembers(conversationId, requireIds(args.userIds));
      return true;
    },
  }),
);

builder.mutationField('setTyping', (t) =>
  t.boolean({
    description:
      'Tells the other members that the viewer started or stopped typing. Members only. Ephemeral and throttled: ' +
      'returns false when a repeated STARTED was dropped by the throttle.',
    args: { conversationId: t.arg.id({ required: true }), state: t.arg({ type: TypingState, required: true }) },
    authScopes: (_root, args) => ({ conversationMember: args.conversationId }),
    resolve: async (_root, args, { principal, services, traceparent }) => {
      if (principal.kind !== 'user') throw forbidden('Sign in to send typing state');
      const conversationId = requireId(args.conversationId, 'conversationId');
      if (!services.typingThrottle.admit(conversationId, principal.userId, args.state)) return false;
      await services.publisher.publish('userTyping', { conversationId, userId: principal.userId, state: args.state }, { traceparent });
      return true;
    },
  }),
);
