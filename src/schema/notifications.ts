import { NOTIFICATION_KINDS } from '../events/contracts.js';
import { topics } from '../events/topics.js';
import { forbidden } from '../errors.js';
import { builder } from './builder.js';
import type { DeliveryExtension } from './delivery.js';
import { eventObjectRef, PublishReceipt, receiptOf, receiptsOf, requireId } from './common.js';

const NotificationKind = builder.enumType('NotificationKind', { values: NOTIFICATION_KINDS });

export const Notification = eventObjectRef('Notification', 'notificationCreated');
builder.objectFields(Notification, (t) => ({
  notificationId: t.id({ description: "The notification service's id.", resolve: (event) => event.data.notificationId }),
  userId: t.id({ description: 'The user it is for.', resolve: (event) => event.data.userId }),
  kind: t.field({ type: NotificationKind, resolve: (event) => event.data.kind }),
  title: t.string({ resolve: (event) => event.data.title }),
  body: t.string({ resolve: (event) => event.data.body }),
  link: t.string({ nullable: true, resolve: (event) => event.data.link }),
}));

builder.subscriptionField('notificationCreated', (t) =>
  t.field({
    type: Notification,
    description: "The viewer's notifications. An admin may name another user with userId.",
    args: { userId: t.arg.id({ required: false, description: 'Admins only, when not the viewer.' }) },
    // Its topic is a user's own, so its groups are that user's and a user's own room costs one
    // lean execution per event (see src/transport/shared-delivery.ts).
    extensions: { delivery: { shareable: true } satisfies DeliveryExtension },
    authScopes: (_root, args) =>
      args.userId ? { $any: { self: args.userId, admin: true } } : { authenticated: true },
    subscribe: (_root, args, { principal, services, sharedDelivery }) => {
      if (principal.kind !== 'user') throw forbidden('Sign in to receive notifications');
      const userId = args.userId ? requireId(args.userId, 'userId') : principal.userId;
      const topic = topics.userNotifications(userId);
      return sharedDelivery ? sharedDelivery.nameTopic(topic) : services.bus.subscribe(topic);
    },
    resolve: (event) => event,
  }),
);

const PublishNotificationInput = builder.inputType('PublishNotificationInput', {
  fields: (t) => ({
    notificationId: t.id({ required: true }),
    userId: t.id({ required: true }),
    kind: t.field({ type: NotificationKind, required: true }),
    title: t.string({ required: true }),
    body: t.string(),
    link: t.string({ description: 'A relative path or https URL.' }),
    occurredAt: t.field({ type: 'DateTime', description: 'When it was created; defaults to now.' }),
  }),
});

builder.mutationField('publishNotification', (t) =>
  t.field({
    type: PublishReceipt,
    description: 'Publishes a notification to its user. Role `service`.',
    args: { input: t.arg({ type: PublishNotificationInput, required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { input }, { services, traceparent }) => {
      const { occurredAt, body, ...data } = input;
      return receiptOf(
        await services.publisher.publish(
          'notificationCreated',
          { ...data, body: body ?? undefined },
          { occurredAt: occurredAt ?? undefined, traceparent },
        ),
      );
    },
  }),
);

builder.mutationField('publishNotifications', (t) =>
  t.field({
    type: [PublishReceipt],
    nullable: { list: false, items: true },
    description:
      'Publishes many notifications in one request and one round trip to the bus, in order (at most PUBLISH_MAX_BATCH); an invalid item is null with a BAD_USER_INPUT error naming its index, the others are published. Role `service`.',
    args: { inputs: t.arg({ type: [PublishNotificationInput], required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { inputs }, { services, traceparent }) =>
      receiptsOf(
        await services.publisher.publishMany(
          'notificationCreated',
          inputs.map(({ occurredAt, body, ...data }) => ({ data: { ...data, body: body ?? undefined }, occurredAt: occurredAt ?? undefined })),
          { traceparent },
        ),
      ),
  }),
);
