import { randomUUID } from 'node:crypto';
import { guardStream, REVOKED } from '../bus/guarded-stream.js';
import { CHAT_RESPONSE_STATUSES, type TidingsEvent } from '../events/contracts.js';
import { topics } from '../events/topics.js';
import { badUserInput, forbidden, notFound } from '../errors.js';
import { builder } from './builder.js';
import type { DeliveryExtension } from './delivery.js';
import { eventObjectRef, PublishReceipt, receiptOf, requireId } from './common.js';

const ChatResponseStatus = builder.enumType('ChatResponseStatus', {
  values: CHAT_RESPONSE_STATUSES,
  description: 'TYPING first, then CHUNKs in sequence order, then DONE, or ERROR instead.',
});

export const ChatResponse = eventObjectRef('ChatResponse', 'chatResponse');
builder.objectFields(ChatResponse, (t) => ({
  sessionId: t.id({ resolve: (event) => event.data.sessionId }),
  replyId: t.id({ description: 'Groups the events of one reply.', resolve: (event) => event.data.replyId }),
  sequence: t.int({ description: 'Position within the reply, from 0.', resolve: (event) => event.data.sequence }),
  status: t.field({ type: ChatResponseStatus, resolve: (event) => event.data.status }),
  text: t.string({ nullable: true, description: 'The text of a CHUNK, or the message of an ERROR.', resolve: (event) => event.data.text }),
}));

export const ChatMessageSent = eventObjectRef('ChatMessageSent', 'chatMessageSent');
builder.objectFields(ChatMessageSent, (t) => ({
  sessionId: t.id({ resolve: (event) => event.data.sessionId }),
  userId: t.id({ resolve: (event) => event.data.userId }),
  messageId: t.id({ resolve: (event) => event.data.messageId }),
  text: t.string({ resolve: (event) => event.data.text }),
}));

const ChatSession = builder
  .objectRef<{ readonly id: string; readonly createdAt: string }>('ChatSession')
  .implement({
    fields: (t) => ({
      id: t.exposeID('id'),
      createdAt: t.field({ type: 'DateTime', resolve: (session) => session.createdAt }),
    }),
  });

const ChatMessageReceipt = builder
  .objectRef<{ readonly sessionId: string; readonly messageId: string }>('ChatMessageReceipt')
  .implement({
    fields: (t) => ({
      sessionId: t.exposeID('sessionId'),
      messageId: t.exposeID('messageId', { description: 'Echoed in the chatMessageSent event for the assistant.' }),
    }),
  });

builder.subscriptionField('chatResponse', (t) =>
  t.field({
    type: ChatResponse,
    description: "The assistant's replies in one of the viewer's chat sessions.",
    args: { sessionId: t.arg.id({ required: true }) },
    authScopes: (_root, args) => ({ chatSessionOwner: args.sessionId }),
    // Its topic is the session's; the owner check on each event is the member's own (its guard).
    extensions: { delivery: { shareable: true } satisfies DeliveryExtension },
    subscribe: (_root, args, { principal, services, log, sharedDelivery }) => {
      if (principal.kind !== 'user') throw forbidden();
      const sessionId = requireId(args.sessionId, 'sessionId');
      const viewerId = principal.userId;
      const topic = topics.chatSession(sessionId);
      // Ownership is checked at subscribe time (chatSessionOwner); each event is also checked
      // against the user it is addressed to, so a reply a service published for another user on
      // this session's channel never reaches the viewer: one string comparison per event and member.
      const accept = (event: TidingsEvent) => {
        if (event.type === 'chatResponse' && event.data.userId === viewerId) return true;
        log.warn({ sessionId, eventId: event.id, reason: 'not_session_owner' }, 'dropped a chatResponse addressed to another user');
        return false;
      };
      if (sharedDelivery) return sharedDelivery.nameTopic(topic, { accept });
      return guardStream(services.bus.subscribe(topic), { accept });
    },
    resolve: (event) => {
      // guardStream yields REVOKED only with a revocation watch, which this stream has none of.
      if (event === REVOKED) throw forbidden();
      return event;
    },
  }),
);

builder.subscriptionField('chatMessageSent', (t) =>
  t.field({
    type: ChatMessageSent,
    description:
      "Users' chat messages, for an external assistant service (CHAT_RESPONDER=external), which answers with publishChatResponse. Role `service`.",
    authScopes: { service: true },
    // Shared by everyone with the same selection and roles (nothing here reads who).
    extensions: { delivery: { shareable: true } satisfies DeliveryExtension },
    subscribe: (_root, _args, { services, sharedDelivery }) => {
      const topic = topics.chatRequests();
      return sharedDelivery ? sharedDelivery.nameTopic(topic) : services.bus.subscribe(topic);
    },
    resolve: (event) => event,
  }),
);

builder.mutationField('startChatSession', (t) =>
  t.field({
    type: ChatSession,
    description: 'Opens a chat session owned by the viewer. Subscribe to chatResponse with its id, then sendChatMessage.',
    authScopes: { authenticated: true },
    resolve: async (_root, _args, { principal, services }) => {
      if (principal.kind !== 'user') throw forbidden();
      return services.directory.chatSessions.create(principal.userId);
    },
  }),
);

builder.mutationField('sendChatMessage', (t) =>
  t.field({
    type: ChatMessageReceipt,
    description: "Hands text to the chat backend; the reply streams on chatResponse(sessionId). The session's owner only.",
    args: { sessionId: t.arg.id({ required: true }), text: t.arg.string({ required: true }) },
    authScopes: { authenticated: true },
    resolve: async (_root, args, { principal, services, chargeRateBudget }) => {
      if (principal.kind !== 'user') throw forbidden();
      // Charged per call, so aliases or fragments cannot send several messages for one unit.
      await chargeRateBudget?.('chat');
      const sessionId = requireId(args.sessionId, 'sessionId');
      const text = args.text.trim();
      if (text.length === 0 || text.length > 4_000) throw badUserInput('text: give 1 to 4000 characters');
      const session = await services.directory.chatSessions.get(sessionId);
      if (!session) throw notFound(`No chat session ${sessionId}; call startChatSession first`);
      if (session.ownerId !== principal.userId) throw forbidden('This chat session belongs to someone else');
      const messageId = randomUUID();
      await services.chat.handle({ sessionId, userId: principal.userId, messageId, text });
      return { sessionId, messageId };
    },
  }),
);

const PublishChatResponseInput = builder.inputType('PublishChatResponseInput', {
  fields: (t) => ({
    sessionId: t.id({ required: true }),
    userId: t.id({ required: true, description: 'The session owner (from chatMessageSent).' }),
    replyId: t.id({ required: true }),
    sequence: t.int({ required: true }),
    status: t.field({ type: ChatResponseStatus, required: true }),
    text: t.string(),
  }),
});

builder.mutationField('publishChatResponse', (t) =>
  t.field({
    type: PublishReceipt,
    description: "Publishes one step of an assistant's reply to the session's chatResponse subscribers. Role `service`.",
    args: { input: t.arg({ type: PublishChatResponseInput, required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { input }, { services, traceparent }) => receiptOf(await services.publisher.publish('chatResponse', input, { traceparent })),
  }),
);
