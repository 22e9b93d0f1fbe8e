import { GraphQLError, Kind } from 'graphql';
import { ROLES } from '../config/config.js';
import { idSchema, isoDate, isoDateTime, type EventEnvelope, type EventType } from '../events/contracts.js';
import { badUserInput } from '../errors.js';
import { builder } from './builder.js';

function stringScalar(name: string, description: string, check: (value: string) => boolean) {
  const parse = (value: unknown) => {
    if (typeof value !== 'string' || !check(value)) {
      throw new GraphQLError(`${name} must be ${description}`, { extensions: { code: 'BAD_USER_INPUT' } });
    }
    return value;
  };
  return builder.scalarType(name as 'DateTime' | 'Date', {
    description: `A string: ${description}.`,
    serialize: (value) => String(value),
    parseValue: parse,
    parseLiteral: (node) => parse(node.kind === Kind.STRING ? node.value : undefined),
  });
}

stringScalar('DateTime', 'an ISO 8601 date-time with offset, e.g. 2026-11-22T10:15:00.000Z', (value) =>
  isoDateTime.safeParse(value).success,
);
stringScalar('Date', 'an ISO 8601 calendar date, e.g. 2026-12-24', (value) => isoDate.safeParse(value).success);

export const RoleEnum = builder.enumType('Role', {
  values: Object.fromEntries(ROLES.map((role) => [role.toUpperCase(), { value: role }])) as Record<
    'USER' | 'HOST' | 'SERVICE' | 'ADMIN',
    { value: (typeof ROLES)[number] }
  >,
});

export interface MoneyShape {
  readonly amountMinor: number;
  readonly currency: string;
}

/**
 * Digits after the decimal point per currency code, remembered: building an Intl.NumberFormat
 * costs microseconds, and every price event formats several amounts. Bounded by the input
 * contract (a currency is three upper-case letters), so at most 17,576 entries.
 */
const fractionDigitsByCurrency = new Map<string, number>();

/** Digits after the decimal point for a currency (2 for EUR, 0 for JPY, 3 for BHD). */
function fractionDigits(currency: string): number {
  let digits = fractionDigitsByCurrency.get(currency);
  if (digits === undefined) {
    try {
      digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
    } catch {
      digits = 2;
    }
    if (/^[A-Z]{3}$/.test(currency)) fractionDigitsByCurrency.set(currency, digits);
  }
  return digits;
}

export function formatMoneyAmount(money: MoneyShape): string {
  const digits = fractionDigits(money.currency);
  const sign = money.amountMinor < 0 ? '-' : '';
  const units = Math.abs(money.amountMinor).toString().padStart(digits + 1, '0');
  return digits === 0 ? `${sign}${units}` : `${sign}${units.slice(0, -digits)}.${units.slice(-digits)}`;
}

export const Money = builder.objectRef<MoneyShape>('Money').implement({
  description: 'An amount of money. Exact: stored in minor units, never as a float.',
  fields: (t) => ({
    amountMinor: t.exposeInt('amountMinor', { description: 'Minor units (cents for EUR, yen for JPY).' }),
    currency: t.exposeString('currency', { description: 'ISO 4217 code.' }),
    amount: t.string({
      description: 'The amount as a decimal string in major units, e.g. "129.00".',
      resolve: (money) => formatMoneyAmount(money),
    }),
  }),
});

export const MoneyInput = builder.inputType('MoneyInput', {
  fields: (t) => ({
    amountMinor: t.int({ required: true, description: 'Minor units (cents for EUR, yen for JPY), >= 0.' }),
    currency: t.string({ required: true, description: 'ISO 4217 code, e.g. EUR.' }),
  }),
});

/** The fields every event carries. */
export const EventInterface = builder
  .interfaceRef<{ readonly id: string; readonly type: string; readonly occurredAt: string }>('Event')
  .implement({
  description: 'Something that happened. Every event has a unique id and the time it occurred at its source.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Unique event id; use it to de-duplicate.' }),
    occurredAt: t.field({ type: 'DateTime', resolve: (event) => event.occurredAt }),
  }),
});

/** An object type for one event type: the envelope is the parent, fields read its data. */
export function eventObjectRef<T extends EventType>(name: string, type: T) {
  return builder.objectRef<EventEnvelope<T>>(name).implement({
    // Every EventEnvelope<T> satisfies the interface's shape; TypeScript cannot see it through the generic T.
    interfaces: [EventInterface] as never,
    isTypeOf: (value) => (value as EventEnvelope | undefined)?.type === type,
  });
}

/** Validates an id argument before it becomes part of a topic name. */
export function requireId(value: string, argument: string): string {
  const result = idSchema.safeParse(value);
  if (!result.success) throw badUserInput(`${argument}: ${result.error.issues[0]?.message ?? 'invalid id'}`);
  return value;
}

export const PublishReceipt = builder
  .objectRef<{ readonly eventId: string; readonly type: EventType; readonly occurredAt: string }>('PublishReceipt')
  .implement({
    description: 'What a publishing mutation returns: the envelope of the event it published.',
    fields: (t) => ({
      eventId: t.exposeID('eventId'),
      type: t.exposeString('type'),
      occurredAt: t.field({ type: 'DateTime', resolve: (receipt) => receipt.occurredAt }),
    }),
  });

export function receiptOf(event: EventEnvelope): { eventId: string; type: EventType; occurredAt: string } {
  return { eventId: event.id, type: event.type, occurredAt: event.occurredAt };
}

/**
 * What a bulk publishing mutation returns: a receipt per item, in order, or for an item that
 * failed a rejected promise, which graphql-js turns into `null` at that position with the item's
 * coded error (path `[field, index]`, `extensions.index`): the others stand.
 */
export function receiptsOf(results: ReadonlyArray<EventEnvelope | GraphQLError>): Array<Promise<ReturnType<typeof receiptOf>>> {
  return results.map((result) => (result instanceof GraphQLError ? Promise.reject(result) : Promise.resolve(receiptOf(result))));
}
