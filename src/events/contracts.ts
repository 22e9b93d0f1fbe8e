import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';

/**
 * The event contracts: one definition per event type, used by the publishing mutations, by
 * Redis ingress validation, by the generated JSON Schemas in `docs/channels/` and by tests.
 * A change here is a change to the public channel contract: bump `version` for breaking changes.
 */

/** Ids become part of topic and channel names, so their alphabet excludes `:` and spaces. */
export const idSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.@-]{1,128}$/, 'must be 1-128 characters of letters, digits and _ . @ -');

export const currencySchema = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as EUR');

/** Money in minor units (cents for EUR, yen for JPY) so no float ever touches a price. */
export const moneySchema = z.object({
  amountMinor: z.number().int().min(0).max(2_147_483_647),
  currency: currencySchema,
});

export const isoDateTime = z.iso.datetime({ offset: true });
export const isoDate = z.iso.date();

export const BOOKING_STATUSES = ['PENDING', 'CONFIRMED', 'CANCELLED', 'CHECKED_IN', 'CHECKED_OUT', 'NO_SHOW'] as const;
export const NOTIFICATION_KINDS = ['BOOKING', 'MESSAGE', 'PRICE_ALERT', 'PAYMENT', 'SYSTEM'] as const;
export const TYPING_STATES = ['STARTED', 'STOPPED'] as const;
export const CHAT_RESPONSE_STATUSES = ['TYPING', 'CHUNK', 'DONE', 'ERROR'] as const;
export const PRESENCE_CHANGES = ['JOINED', 'LEFT'] as const;
/** The most changes one presence announcement carries (an instance's coalesced burst for one scope). */
export const MAX_PRESENCE_CHANGES = 10_000;

export const eventDataSchemas = {
  priceUpdated: z.object({
    hotelId: idSchema,
    roomType: z.string().min(1).max(64),
    price: moneySchema,
    previousPrice: moneySchema.nullable().default(null),
    /** Admin-only on the way out; margin is derived from it. */
    supplierCost: moneySchema.nullable().default(null),
  }),
  newMessage: z.object({
    messageId: idSchema,
    conversationId: idSchema,
    senderId: idSchema,
    text: z.string().min(1).max(4_000),
  }),
  userTyping: z.object({
    conversationId: idSchema,
    userId: idSchema,
    state: z.enum(TYPING_STATES),
  }),
  bookingUpdated: z
    .object({
      bookingId: idSchema,
      hotelId: idSchema,
      guestId: idSchema,
      hostId: idSchema,
      status: z.enum(BOOKING_STATUSES),
      previousStatus: z.enum(BOOKING_STATUSES).nullable().default(null),
      checkIn: isoDate,
      checkOut: isoDate,
      /** Guest, host or admin only on the way out. */
      totalPrice: moneySchema,
    })
    .refine((booking) => booking.checkOut > booking.checkIn, {
      message: 'checkOut must be after checkIn',
      path: ['checkOut'],
    }),
  notificationCreated: z.object({
    notificationId: idSchema,
    userId: idSchema,
    kind: z.enum(NOTIFICATION_KINDS),
    title: z.string().min(1).max(200),
    body: z.string().max(2_000).default(''),
    /** A relative path or https URL the frontend may link to. */
    link: z
      .string()
      .max(2_048)
      .regex(/^(\/|https:\/\/)/, 'must be a relative path or an https URL')
      .nullable()
      .default(null),
  }),
  chatResponse: z
    .object({
      sessionId: idSchema,
      /** The session owner; the gateway delivers only to this user. */
      userId: idSchema,
      replyId: idSchema,
      sequence: z.number().int().min(0).max(1_000_000),
      status: z.enum(CHAT_RESPONSE_STATUSES),
      text: z.string().max(8_000).nullable().default(null),
    })
    .refine((reply) => reply.status !== 'CHUNK' || (reply.text ?? '') !== '', {
      message: 'a CHUNK carries text',
      path: ['text'],
    }),
  /**
   * Who became present or stopped being present, in a conversation (members with a subscription
   * to it) or anywhere (`user`: online), coalesced by the instance that saw it. Announced by the
   * gateways themselves (src/presence/); services read presence in Redis (docs/CHANNELS.md).
   */
  presenceChanged: z.object({
    scope: z.enum(['conversation', 'user']),
    /** The conversation id, or the user id for `user`. */
    scopeId: idSchema,
    changes: z
      .array(z.object({ userId: idSchema, change: z.enum(PRESENCE_CHANGES), at: isoDateTime }))
      .min(1)
      .max(MAX_PRESENCE_CHANGES),
  }),
  /** A user's chat message, handed to an external assistant service (CHAT_RESPONDER=external). */
  chatMessageSent: z.object({
    sessionId: idSchema,
    userId: idSchema,
    messageId: idSchema,
    text: z.string().min(1).max(4_000),
  }),
} as const;

export type EventType = keyof typeof eventDataSchemas;
export const EVENT_TYPES = Object.keys(eventDataSchemas) as EventType[];

/** The current envelope version of every event type. Ingress refuses other versions. */
export const EVENT_VERSION = 1;

export type EventData<T extends EventType> = z.output<(typeof eventDataSchemas)[T]>;
export type EventDataInput<T extends EventType> = z.input<(typeof eventDataSchemas)[T]>;

export interface EventEnvelope<T extends EventType = EventType> {
  readonly id: string;
  readonly type: T;
  readonly version: typeof EVENT_VERSION;
  /** ISO 8601 with offset; when the thing happened at its source. */
  readonly occurredAt: string;
  readonly data: EventData<T>;
  /**
   * The W3C trace context of the publish (`00-<trace id>-<span id>-<flags>`), when the publisher
   * traces: each receiving instance's delivery span continues that trace. Ignored when malformed.
   */
  readonly traceparent?: string;
}

/** A validated event of any type, discriminated by `type`. */
export type TidingsEvent = { [T in EventType]: EventEnvelope<T> }[EventType];

export const envelopeSchema = z.object({
  id: idSchema,
  type: z.string(),
  version: z.number().int(),
  occurredAt: isoDateTime,
  data: z.unknown(),
  // Malformed or oversized: ignored (dropped from the envelope), never a reason to drop the event.
  traceparent: z.string().max(256).optional().catch(undefined),
});

/** The wire schema of one event type: the envelope with that type's data. For JSON Schema export. */
export function wireSchemaOf(type: EventType) {
  return envelopeSchema.extend({
    type: z.literal(type),
    version: z.literal(EVENT_VERSION),
    data: eventDataSchemas[type],
  });
}

/**
 * The membership change notification a message service publishes on `{prefix}membership`
 * after changing a conversation's member set (see docs/CHANNELS.md).
 */
export const membershipChangeSchema = z
  .object({
    conversationId: idSchema,
    added: z.array(idSchema).max(10_000).default([]),
    removed: z.array(idSchema).max(10_000).default([]),
  })
  .refine((change) => change.added.length + change.removed.length > 0, { message: 'names no member' });
export type MembershipChange = z.input<typeof membershipChangeSchema>;

/**
 * Announced on `{prefix}sessions:revoked` when a user's sessions are revoked (after the revocation
 * is stored in `{prefix}sessions-revoked:{userId}`): every instance ends that user's connections
 * and subscriptions whose token was issued before `revokedAt`.
 */
export const sessionRevocationSchema = z
  .object({
    userId: idSchema,
    /** Epoch milliseconds; tokens issued (iat) in an earlier second are refused from now on. */
    revokedAt: z.number().int().positive(),
    reason: z.string().max(200).optional(),
  })
  .strict();
export type SessionRevocation = z.infer<typeof sessionRevocationSchema>;

/** A JSON control message from a Redis channel (membership change, revocation), validated. */
export function parseChannelMessage<T>(
  raw: string,
  schema: z.ZodType<T>,
): { readonly ok: true; readonly data: T } | { readonly ok: false; readonly reason: 'invalid_json' | 'shape'; readonly issues: string[] } {
  let document: unknown;
  try {
    document = JSON.parse(raw);
  } catch {
    return { ok: false, reason: 'invalid_json', issues: ['not JSON'] };
  }
  const parsed = schema.safeParse(document);
  if (parsed.success) return { ok: true, data: parsed.data };
  return { ok: false, reason: 'shape', issues: parsed.error.issues.slice(0, 5).map((issue) => issue.message) };
}

/**
 * The text of a channel message received as bytes, or undefined when the bytes are not valid
 * UTF-8. JSON is UTF-8 text: decoding invalid bytes leniently (as ioredis' string events do) turns
 * them into U+FFFD, and the result could then pass validation as if the publisher had sent it.
 */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  if (!isUtf8(bytes)) return undefined;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/**
 * `parseChannelMessage` for a message received as bytes (ioredis' `messageBuffer` event):
 * non-UTF-8 bytes are `invalid_json`, as the channel contract says.
 */
export function parseChannelMessageBytes<T>(raw: Uint8Array, schema: z.ZodType<T>): ReturnType<typeof parseChannelMessage<T>> {
  const text = decodeUtf8(raw);
  if (text === undefined) return { ok: false, reason: 'invalid_json', issues: ['not UTF-8'] };
  return parseChannelMessage(text, schema);
}

export type EventParseResult =
  | { readonly ok: true; readonly event: TidingsEvent }
  | { readonly ok: false; readonly reason: 'shape' | 'unknown_type' | 'version'; readonly issues: string[] };

function describeIssues(error: z.ZodError, prefix: string): string[] {
  return error.issues.map((issue) => `${[prefix, ...issue.path].filter(Boolean).join('.')}: ${issue.message}`);
}

/** Each type's whole event in one schema: one pass over a valid event instead of two and a copy. */
const wireSchemas = new Map<string, ReturnType<typeof wireSchemaOf>>(EVENT_TYPES.map((type) => [type, wireSchemaOf(type)]));

/** Validates an already-JSON-parsed document as an event. Never throws. */
export function parseEvent(document: unknown): EventParseResult {
  // A valid event passes its type's schema in one pass; anything else is explained by the
  // envelope and data checks below, which name the first thing wrong (envelope before type,
  // version and data).
  const type = typeof document === 'object' && document !== null ? (document as { type?: unknown }).type : undefined;
  const wire = typeof type === 'string' ? wireSchemas.get(type) : undefined;
  const parsed = wire?.safeParse(document);
  if (parsed?.success) return { ok: true, event: parsed.data as TidingsEvent };
  return explainInvalidEvent(document);
}

function explainInvalidEvent(document: unknown): EventParseResult {
  const envelope = envelopeSchema.safeParse(document);
  if (!envelope.success) return { ok: false, reason: 'shape', issues: describeIssues(envelope.error, '') };
  const { type, version } = envelope.data;
  if (!Object.hasOwn(eventDataSchemas, type)) {
    return { ok: false, reason: 'unknown_type', issues: [`type: unknown event type "${type.slice(0, 64)}"`] };
  }
  if (version !== EVENT_VERSION) {
    return { ok: false, reason: 'version', issues: [`version: ${type} supports version ${EVENT_VERSION}, got ${version}`] };
  }
  const data = eventDataSchemas[type as EventType].safeParse(envelope.data.data);
  if (!data.success) return { ok: false, reason: 'shape', issues: describeIssues(data.error, 'data') };
  return { ok: true, event: { ...envelope.data, version: EVENT_VERSION, data: data.data } as TidingsEvent };
}

export type BuildEventResult<T extends EventType> =
  | { readonly ok: true; readonly event: EventEnvelope<T> }
  | { readonly ok: false; readonly issues: string[] };

/** The envelope fields buildEvent fills in. Made once: zod compiles a schema when first used. */
const envelopeIdentitySchema = envelopeSchema.pick({ id: true, occurredAt: true });

/**
 * Validates `input` as the data of `type` and wraps it in a new envelope. The one way events are
 * made, by the gateway's mutations and by the TypeScript publisher in src/sdk/.
 */
export function buildEvent<T extends EventType>(
  type: T,
  input: EventDataInput<T>,
  options: { id?: string; occurredAt?: string; now?: () => Date; traceparent?: string } = {},
): BuildEventResult<T> {
  const data = parseEventData(type, input);
  if (!data.ok) return data;
  const occurredAt = options.occurredAt ?? (options.now ?? (() => new Date()))().toISOString();
  const envelope = envelopeIdentitySchema.safeParse({ id: options.id ?? randomUUID(), occurredAt });
  if (!envelope.success) return { ok: false, issues: describeIssues(envelope.error, '') };
  const event: EventEnvelope<T> = { ...envelope.data, type, version: EVENT_VERSION, data: data.data };
  return { ok: true, event: options.traceparent === undefined ? event : { ...event, traceparent: options.traceparent } };
}

export type EventDataResult<T extends EventType> =
  | { readonly ok: true; readonly data: EventData<T> }
  | { readonly ok: false; readonly issues: string[] };

/** Validates the data part of one event type (the mutation path). Never throws. */
export function parseEventData<T extends EventType>(type: T, input: unknown): EventDataResult<T> {
  const result = eventDataSchemas[type].safeParse(input);
  if (!result.success) return { ok: false, issues: describeIssues(result.error, '') };
  return { ok: true, data: result.data as EventData<T> };
}
