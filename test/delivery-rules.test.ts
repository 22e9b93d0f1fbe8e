import { getNamedType, isObjectType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { deliveryRulesOf } from '../src/schema/delivery.js';
import { buildSchema } from '../src/schema/index.js';

describe('delivery rules, as the schema declares them', () => {
  it('shares every subscription field but the presence ones, and conflates prices by room type and typing by user', () => {
    const schema = buildSchema();
    const rules = deliveryRulesOf(schema);
    // presence and userPresence start with a snapshot of their own for each subscriber: they run
    // as their own streams.
    const ownStreams = ['presence', 'userPresence'];
    expect([...rules.shareable].sort()).toEqual(Object.keys(schema.getSubscriptionType()!.getFields()).filter((field) => !ownStreams.includes(field)).sort());
    expect(Object.fromEntries(rules.conflateBy)).toEqual({ priceUpdated: 'roomType', userTyping: 'userId' });
  });

  it('names only result fields that exist on the field type', () => {
    const schema = buildSchema();
    const fields = schema.getSubscriptionType()!.getFields();
    for (const [field, by] of deliveryRulesOf(schema).conflateBy) {
      const type = getNamedType(fields[field]!.type);
      expect(isObjectType(type) ? Object.keys(type.getFields()) : []).toContain(by);
    }
  });
});
