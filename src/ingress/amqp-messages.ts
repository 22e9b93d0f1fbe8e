import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  BOOKING_STATUSES,
  buildEvent,
  decodeUtf8,
  isoDateTime,
  NOTIFICATION_KINDS,
  parseEvent,
  type BuildEventResult,
  type EventType,
  type TidingsEvent,
} from '../events/contracts.js';
import type { BookingParties } from '../directory/directory.js';

/**
 * The messages the existing services publish on their RabbitMQ exchange, exactly as they send
 * them (`EventBus.publish(routingKey, data)`: JSON, persistent), and how each becomes a Tidings
 * event. docs/INGRESS.md is the user-facing version of this file: change both together.
 *
 * A message that cannot be mapped is never guessed at: the result names the reason, and the
 * ingress moves the message to the dead-letter queue.
 */

/** Why a message was dead-lettered: the `reason` label of tidings_amqp_messages_dead_lettered_total. */
export type PoisonReason = 'too_large' | 'invalid_json' | 'unknown_routing_key' | 'shape' | 'version' | 'unknown_booking' | 'party_mismatch';

/** The kinds of routing key the ingress consumes: the `kind` label of tidings_amqp_messages_consumed_total. */
export type MessageKind = 'message_sent' | 'booking' | 'notification_created' | 'price_updated' | 'other';

/** The routing keys the ingress queue is bound to on the exchange. */
export const BOUND_ROUTING_KEYS = ['message.sent', 'booking.*', 'notification.created', 'price.updated'] as const;

export function kindOf(routingKey: string): MessageKind {
  if (routingKey === 'message.sent') return 'message_sent';
  if (/^booking\.[^.]+$/.test(routingKey)) return 'booking';
  if (routingKey === 'notification.created') return 'notification_created';
  if (routingKey === 'price.updated') return 'price_updated';
  return 'other';
}

export type MappedMessage =
  | { readonly ok: true; readonly event: TidingsEvent }
  | { readonly ok: false; readonly reason: PoisonReason; readonly issues: readonly string[] };

export interface MappingContext {
  /** Messages larger than this are not read (EVENT_MAX_BYTES). */
  readonly maxBytes: number;
  /** The currency of booking.totalPrice (AMQP_BOOKING_CURRENCY). */
  readonly bookingCurrency: string;
  /**
   * The booking's guest and host as registered (registerBooking, or the booking service's
   * Redis hash). May reject (Redis unreachable): the ingress then hands the message back.
   */
  partiesOf(bookingId: string): Promise<BookingParties | undefined>;
}

/** Ids as services send them: strings, or integers from a SQL database. */
const sourceId = z.union([z.string().min(1), z.number().int().nonnegative()]).transform(String);
/** A JSON-serialized JavaScript Date (`2026-12-07T10:00:00.000Z`) or any ISO 8601 time with offset. */
const timestamp = isoDateTime;
/** A check-in/out as a date (`2027-01-10`) or a serialized Date; the calendar date as written is taken. */
const calendarDate = z.union([z.iso.date(), isoDateTime]).transform((value) => value.slice(0, 10));

const messageSentSchema = z.object({
  conversationId: sourceId,
  senderId: sourceId,
  recipientId: sourceId.optional(),
  message: z.object({ id: sourceId, content: z.string(), timestamp }),
  timestamp: timestamp.optional(),
});

const bookingSchema = z.object({
  bookingId: sourceId,
  userId: sourceId,
  status: z.string().min(1).max(64),
  booking: z.object({
    id: sourceId.optional(),
    listingId: sourceId,
    checkIn: calendarDate,
    checkOut: calendarDate,
    totalPrice: z.number().finite().nonnegative(),
  }),
  timestamp,
});

const notificationSchema = z.object({
  notificationId: sourceId,
  userId: sourceId,
  type: z.string().max(64).optional(),
  title: z.string(),
  message: z.string().nullish(),
  data: z.record(z.string(), z.unknown()).nullish(),
  timestamp,
});

/**
 * The event id of a message: a hash of its kind and its own id, so every redelivery of one
 * message (to any instance) gets the same id and is published once (EventBus.publishOnce).
 * 32 base64url characters (192 bits) fit the contract's id alphabet.
 */
export function derivedEventId(kind: MessageKind, ownId: string): string {
  return `amqp-${createHash('sha256').update(`${kind}\n${ownId}`).digest('base64url').slice(0, 32)}`;
}

function issuesOf(error: z.ZodError): string[] {
  return error.issues.slice(0, 5).map((issue) => `${issue.path.join('.') || '(message)'}: ${issue.message}`);
}

const poison = (reason: PoisonReason, issues: readonly string[]): MappedMessage => ({ ok: false, reason, issues });

/** The built event, or the contract's own issues (a title too long, an id with a space, …). */
function fromBuilt(built: BuildEventResult<EventType>): MappedMessage {
  return built.ok ? { ok: true, event: built.event as TidingsEvent } : poison('shape', built.issues.slice(0, 5));
}

/** `confirmed`, `checked-in`, `CHECKED_IN` → the BookingStatus, or undefined. */
function bookingStatusOf(text: string): (typeof BOOKING_STATUSES)[number] | undefined {
  const normalized = text.trim().toUpperCase().replace(/[-\s]/g, '_');
  return (BOOKING_STATUSES as readonly string[]).includes(normalized) ? (normalized as (typeof BOOKING_STATUSES)[number]) : undefined;
}

/** The minor units of `currency` (2 for EUR, 0 for JPY), from the runtime's ICU data. */
function minorDigitsOf(currency: string): number {
  return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
}

/** 199.99 EUR → 19999; undefined when the number has more decimals than the currency. */
export function toMinorUnits(amount: number, currency: string): number | undefined {
  const scaled = amount * 10 ** minorDigitsOf(currency);
  const rounded = Math.round(scaled);
  // Binary floating point: 199.99 × 100 is 19998.999999999996, which is 19999.
  return Math.abs(scaled - rounded) < 1e-6 * Math.max(1, Math.abs(scaled)) && Number.isSafeInteger(rounded) ? rounded : undefined;
}

const NOTIFICATION_KIND_ALIASES: Readonly<Record<string, (typeof NOTIFICATION_KINDS)[number]>> = {
  PRICE: 'PRICE_ALERT',
  PRICE_DROP: 'PRICE_ALERT',
  CHAT: 'MESSAGE',
  NEW_MESSAGE: 'MESSAGE',
};

/** `booking`, `message`, `price_alert`, … → NotificationKind; anything else → SYSTEM. */
export function notificationKindOf(type: string | undefined): (typeof NOTIFICATION_KINDS)[number] {
  const normalized = (type ?? '').trim().toUpperCase().replace(/[-\s]/g, '_');
  if ((NOTIFICATION_KINDS as readonly string[]).includes(normalized)) return normalized as (typeof NOTIFICATION_KINDS)[number];
  return NOTIFICATION_KIND_ALIASES[normalized] ?? 'SYSTEM';
}

function parseJson(content: Buffer, maxBytes: number): { ok: true; document: unknown } | { ok: false; mapped: MappedMessage } {
  if (content.byteLength > maxBytes) return { ok: false, mapped: poison('too_large', [`${content.byteLength} bytes, more than ${maxBytes}`]) };
  const text = decodeUtf8(content);
  if (text === undefined) return { ok: false, mapped: poison('invalid_json', ['not UTF-8']) };
  try {
    return { ok: true, document: JSON.parse(text) };
  } catch {
    return { ok: false, mapped: poison('invalid_json', ['not JSON']) };
  }
}

/** Maps one message to the event it stands for. Never throws except when partiesOf rejects. */
export async function mapMessage(routingKey: string, content: Buffer, context: MappingContext): Promise<MappedMessage> {
  const kind = kindOf(routingKey);
  if (kind === 'other') return poison('unknown_routing_key', [`routing key "${routingKey.slice(0, 128)}" is not one Tidings consumes`]);
  const json = parseJson(content, context.maxBytes);
  if (!json.ok) return json.mapped;
  const { document } = json;

  switch (kind) {
    case 'message_sent': {
      const parsed = messageSentSchema.safeParse(document);
      if (!parsed.success) return poison('shape', issuesOf(parsed.error));
      const sent = parsed.data;
      return fromBuilt(
        buildEvent(
          'newMessage',
          { messageId: sent.message.id, conversationId: sent.conversationId, senderId: sent.senderId, text: sent.message.content },
          { id: derivedEventId(kind, sent.message.id), occurredAt: sent.message.timestamp },
        ),
      );
    }
    case 'booking': {
      const parsed = bookingSchema.safeParse(document);
      if (!parsed.success) return poison('shape', issuesOf(parsed.error));
      const message = parsed.data;
      const status = bookingStatusOf(message.status);
      if (!status) return poison('shape', [`status: "${message.status.slice(0, 64)}" is not a booking status (${BOOKING_STATUSES.join(', ')})`]);
      // booking.confirmed, booking.cancelled, …: when the key names a status, the body must agree.
      const keyStatus = bookingStatusOf(routingKey.slice('booking.'.length));
      if (keyStatus && keyStatus !== status) return poison('shape', [`status: ${status} contradicts routing key ${routingKey}`]);
      if (message.booking.id !== undefined && message.booking.id !== message.bookingId) {
        return poison('shape', ['booking.id: differs from bookingId']);
      }
      const amountMinor = toMinorUnits(message.booking.totalPrice, context.bookingCurrency);
      if (amountMinor === undefined) {
        return poison('shape', [`booking.totalPrice: more decimals than ${context.bookingCurrency} has`]);
      }
      const parties = await context.partiesOf(message.bookingId);
      // Issues name fields and rules, never values: they are logged (ids are personal data).
      if (!parties) return poison('unknown_booking', ['bookingId: the booking\'s guest and host are not registered (registerBooking or the booking hash)']);
      if (message.userId !== parties.guestId && message.userId !== parties.hostId) {
        return poison('party_mismatch', ["userId: neither the booking's guest nor its host"]);
      }
      return fromBuilt(
        buildEvent(
          'bookingUpdated',
          {
            bookingId: message.bookingId,
            hotelId: message.booking.listingId,
            guestId: parties.guestId,
            hostId: parties.hostId,
            status,
            checkIn: message.booking.checkIn,
            checkOut: message.booking.checkOut,
            totalPrice: { amountMinor, currency: context.bookingCurrency },
          },
          // A booking reaches a status once per change; the timestamp tells two changes to the same status apart.
          { id: derivedEventId(kind, `${message.bookingId}\n${status}\n${message.timestamp}`), occurredAt: message.timestamp },
        ),
      );
    }
    case 'notification_created': {
      const parsed = notificationSchema.safeParse(document);
      if (!parsed.success) return poison('shape', issuesOf(parsed.error));
      const notification = parsed.data;
      const link = notification.data?.['link'];
      return fromBuilt(
        buildEvent(
          'notificationCreated',
          {
            notificationId: notification.notificationId,
            userId: notification.userId,
            kind: notificationKindOf(notification.type),
            title: notification.title,
            body: notification.message ?? '',
            link: typeof link === 'string' ? link : null,
          },
          { id: derivedEventId(kind, notification.notificationId), occurredAt: notification.timestamp },
        ),
      );
    }
    case 'price_updated': {
      // Tidings' own envelope, as on Redis: its id is the publisher's, and de-duplicates.
      const parsed = parseEvent(document);
      if (!parsed.ok) return poison(parsed.reason === 'version' ? 'version' : 'shape', parsed.issues.slice(0, 5));
      if (parsed.event.type !== 'priceUpdated') return poison('shape', [`type: price.updated carries priceUpdated events, got ${parsed.event.type}`]);
      return { ok: true, event: parsed.event };
    }
  }
}
