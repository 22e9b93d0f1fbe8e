import type { GraphQLSchema } from 'graphql';

/**
 * How a subscription field's events may be delivered, declared beside the field (its Pothos
 * `extensions.delivery`) and read by the transports from the schema they serve, so a feature's
 * rules live with the feature:
 *
 * - `shareable`: the field's results depend only on the operation, its variables and the
 *   subscriber's roles, never on who the subscriber is, so subscribers that agree on those share
 *   one execution per event. Its subscribe resolver must report its topic through
 *   `context.sharedDelivery` when that is set.
 * - `conflateBy`: each event replaces the previous one with the same value of this field of the
 *   result (a room's price, a user's typing state): a client that falls behind only needs the
 *   latest per value. Everything else is delivered in full or the client is disconnected.
 */
export interface DeliveryExtension {
  readonly shareable?: boolean;
  readonly conflateBy?: string;
}

export interface DeliveryRules {
  readonly shareable: ReadonlySet<string>;
  /** Root field → the result field whose value names what an event replaces. */
  readonly conflateBy: ReadonlyMap<string, string>;
}

/** The delivery rules of every subscription field of `schema`. */
export function deliveryRulesOf(schema: GraphQLSchema): DeliveryRules {
  const shareable = new Set<string>();
  const conflateBy = new Map<string, string>();
  for (const [name, field] of Object.entries(schema.getSubscriptionType()?.getFields() ?? {})) {
    const delivery = field.extensions['delivery'] as DeliveryExtension | undefined;
    if (delivery?.shareable) shareable.add(name);
    if (delivery?.conflateBy) conflateBy.set(name, delivery.conflateBy);
  }
  return { shareable, conflateBy };
}
