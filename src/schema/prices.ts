import { topics } from '../events/topics.js';
import { builder } from './builder.js';
import type { DeliveryExtension } from './delivery.js';
import { eventObjectRef, Money, MoneyInput, PublishReceipt, receiptOf, receiptsOf, requireId, type MoneyShape } from './common.js';

export const PriceUpdate = eventObjectRef('PriceUpdate', 'priceUpdated');

function marginOf(price: MoneyShape, supplierCost: MoneyShape | null): MoneyShape | null {
  if (!supplierCost || supplierCost.currency !== price.currency) return null;
  return { amountMinor: price.amountMinor - supplierCost.amountMinor, currency: price.currency };
}

builder.objectFields(PriceUpdate, (t) => ({
  hotelId: t.id({ resolve: (event) => event.data.hotelId }),
  roomType: t.string({ resolve: (event) => event.data.roomType }),
  price: t.field({ type: Money, resolve: (event) => event.data.price }),
  previousPrice: t.field({ type: Money, nullable: true, resolve: (event) => event.data.previousPrice }),
  supplierCost: t.field({
    type: Money,
    nullable: true,
    description: 'What the supplier charges. Admins only: null with a FORBIDDEN error for others.',
    authScopes: { admin: true },
    resolve: (event) => event.data.supplierCost,
  }),
  margin: t.field({
    type: Money,
    nullable: true,
    description: 'price minus supplierCost, when both are in one currency. Admins only.',
    authScopes: { admin: true },
    resolve: (event) => marginOf(event.data.price, event.data.supplierCost),
  }),
}));

builder.subscriptionField('priceUpdated', (t) =>
  t.field({
    type: PriceUpdate,
    description: "A hotel's new room prices. Open to every connection, anonymous ones too when the deployment allows them.",
    args: { hotelId: t.arg.id({ required: true }) },
    // Public, with admin-only fields decided by role; a room's new price replaces its old one.
    extensions: { delivery: { shareable: true, conflateBy: 'roomType' } satisfies DeliveryExtension },
    subscribe: (_root, args, { services, sharedDelivery }) => {
      const topic = topics.hotelPrices(requireId(args.hotelId, 'hotelId'));
      // The transports' shared deliveries join the subscriber to a group sharing one execution per event.
      return sharedDelivery ? sharedDelivery.nameTopic(topic) : services.bus.subscribe(topic);
    },
    resolve: (event) => event,
  }),
);

const PublishPriceInput = builder.inputType('PublishPriceInput', {
  fields: (t) => ({
    hotelId: t.id({ required: true }),
    roomType: t.string({ required: true }),
    price: t.field({ type: MoneyInput, required: true }),
    previousPrice: t.field({ type: MoneyInput }),
    supplierCost: t.field({ type: MoneyInput }),
    occurredAt: t.field({ type: 'DateTime', description: 'When the price changed; defaults to now.' }),
  }),
});

builder.mutationField('publishPrice', (t) =>
  t.field({
    type: PublishReceipt,
    description: 'Publishes a price change to priceUpdated subscribers of the hotel. Role `service`.',
    args: { input: t.arg({ type: PublishPriceInput, required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { input }, { services, traceparent }) => {
      const { occurredAt, ...data } = input;
      const event = await services.publisher.publish('priceUpdated', data, { occurredAt: occurredAt ?? undefined, traceparent });
      return receiptOf(event);
    },
  }),
);

builder.mutationField('publishPrices', (t) =>
  t.field({
    type: [PublishReceipt],
    nullable: { list: false, items: true },
    description:
      'Publishes many price changes in one request and one round trip to the bus, in order (at most PUBLISH_MAX_BATCH). Each item is validated on its own: an invalid one is null in the result with a BAD_USER_INPUT error naming its index, and the others are published. Role `service`.',
    args: { inputs: t.arg({ type: [PublishPriceInput], required: true }) },
    authScopes: { service: true },
    resolve: async (_root, { inputs }, { services, traceparent }) =>
      receiptsOf(await services.publisher.publishMany('priceUpdated', inputs.map(({ occurredAt, ...data }) => ({ data, occurredAt: occurredAt ?? undefined })), { traceparent })),
  }),
);
