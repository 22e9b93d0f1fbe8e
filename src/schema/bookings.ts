import { BOOKING_STATUSES, type TidingsEvent } from '../events/contracts.js';
import { topics } from '../events/topics.js';
import { guardStream } from '../bus/guarded-stream.js';
import { hasRole } from '../auth/principal.js';
import { forbidden } from '../errors.js';
import { builder } from './builder.js';
import type { DeliveryExtension } from './delivery.js';
import { eventObjectRef, Money, MoneyInput, PublishReceipt, receiptOf, receiptsOf, requireId } from './common.js';

const BookingStatus = builder.enumType('BookingStatus', { values: BOOKING_STATUSES });

export const BookingUpdate = eventObjectRef('BookingUpdate', 'bookingUpdated');
builder.objectFields(BookingUpdate, (t) => ({
  bookingId: t.id({ resolve: (event) => event.data.bookingId }),
  hotelId: t.id({ resolve: (event) => event.data.hotelId }),
  guestId: t.id({ resolve: (event) => event.data.guestId }),
  hostId: t.id({ resolve: (event) => event.data.hostId }),
  status: t.field({ type: BookingStatus, resolve: (event) => event.data.status }),
  previousStatus: t.field({ type: BookingStatus, nullable: true, resolve: (event) => event.data.previousStatus }),
  checkIn: t.field({ type: 'Date', resolve: (event) => event.data.checkIn }),
  checkOut: t.field({ type: 'Date', resolve: (event) => event.data.checkOut }),
  totalPrice: t.field({
    type: Money,
    nullable: true,
    description: "The booking's total. Its guest, its host or an admin only: null with a FORBIDDEN error for others.",
    authScopes: (event, _args, { principal }) =>
      hasRole(principal, 'admin') ||
      (principal.kind === 'user' && (principal.userId === event.data.guestId || principal.userId === event.data.hostId)),
    resolve: (event) => event.data.totalPrice,
  }),
}));

builder.subscriptionField('bookingUpdated', (t) =>
  t.field({
    type: BookingUpdate,
    description:
      "Status changes of one booking (its guest or host only), or without bookingId of all the viewer's bookings.",
    args: { bookingId: t.arg.id({ required: false }) },
    authScopes: (_root, args) => (args.bookingId ? { bookingParty: args.bookingId } : { authenticated: true }),
    // Its topic is the viewer's own, so its groups are the user's.
    extensions: { delivery: { shareable: true } satisfies DeliveryExtension },
    subscribe: (_root, args, { principal, services, sharedDelivery }) => {
      if (principal.kind !== 'user') throw forbidden('Sign in to follow bookings');
      const bookingId = args.bookingId ? requireId(args.bookingId, 'bookingId') : undefined;
      // Every update reaches both parties' own topics, so a viewer only ever listens to their own.
      const topic = topics.userBookings(principal.userId);
      const accept = bookingId === undefined ? undefined : (event: TidingsEvent) => event.type === 'bookingUpdated' && event.data.bookingId === bookingId;
      if (sharedDelivery) return sharedDelivery.nameTopic(topic, accept ? { accept } : undefined);
      const stream = services.bus.subscribe(topic);
      return accept === undefined ? stream : guardStream(stream, { accept });
    },
    resolve: (event) => {
      if (typeof event === 'symbol') throw forbidden();
      return event;
    },
  }),
);

const PublishBookingUpdateInput = builder.inputType('PublishBookingUpdateInput', {
  fields: (t) => ({
    bookingId: t.id({ required: true }),
    hotelId: t.id({ required: true }),
    guestId: t.id({ required: true }),
    hostId: t.id({ required: true }),
    status: t.field({ type: BookingStatus, required: true }),
    previousStatus: t.field({ type: BookingStatus }),
    checkIn: t.field({ type: 'Date', required: true }),
    checkOut: t.field({ type: 'Date', required: true }),
    totalPrice: t.field({ type: MoneyInput, required: true }),
    occurredAt: t.field({ type: 'DateTime', description: 'When the status changed; defaults to now.' }),
  }),
});

builder.mutationField('publishBookingUpdate', (t) =>
  t.field({
    type: PublishReceipt,
    description:
      'Publishes a booking status change to its guest and host, and records them as the booking\'s parties. Role `service`.',
    args: { input: t.arg({ type: PublishBookingUpdateInput, required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { input }, { services, traceparent }) => {
      const { occurredAt, ...data } = input;
      const event = await services.publisher.publish('bookingUpdated', data, { occurredAt: occurredAt ?? undefined, traceparent });
      await services.directory.bookings.setParties(event.data.bookingId, event.data);
      return receiptOf(event);
    },
  }),
);

builder.mutationField('publishBookingUpdates', (t) =>
  t.field({
    type: [PublishReceipt],
    nullable: { list: false, items: true },
    description:
      "Publishes many booking status changes in one request and one round trip to the bus, in order (at most PUBLISH_MAX_BATCH), and records each published booking's parties; an invalid item is null with a BAD_USER_INPUT error naming its index, the others are published. Role `service`.",
    args: { inputs: t.arg({ type: [PublishBookingUpdateInput], required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { inputs }, { services, traceparent }) => {
      const results = await services.publisher.publishMany('bookingUpdated', inputs.map(({ occurredAt, ...data }) => ({ data, occurredAt: occurredAt ?? undefined })), { traceparent });
      await Promise.all(results.map((result) => (result instanceof Error ? undefined : services.directory.bookings.setParties(result.data.bookingId, result.data))));
      return receiptsOf(results);
    },
  }),
);

builder.mutationField('registerBooking', (t) =>
  t.boolean({
    description:
      'Records who the guest and host of a booking are, so they can subscribe to it before its first update. Role `service`.',
    args: {
      bookingId: t.arg.id({ required: true }),
      guestId: t.arg.id({ required: true }),
      hostId: t.arg.id({ required: true }),
    },
    authScopes: { service: true },
    resolve: async (_root, args, { services }) => {
      const bookingId = requireId(args.bookingId, 'bookingId');
      const parties = { guestId: requireId(args.guestId, 'guestId'), hostId: requireId(args.hostId, 'hostId') };
      await services.directory.bookings.setParties(bookingId, parties);
      return true;
    },
  }),
);
