import { BOOKING_STATUS_CYCLE, CONVERSATION_ID, DEMO_BOOKING, DEMO_USERS, SERVICE_IDENTITY, newId } from './demo.js';
import { DevTokenSource } from './dev-tokens.js';

/**
 * The demo plays the backend services itself: it publishes events with the gateway's `service`
 * mutations, using a service token from /dev/token. Development only — in production these calls
 * come from your pricing, message, booking and notification services, never from a browser.
 *
 * The documents are plain strings on purpose: they are not part of @tidings/client (a frontend
 * never publishes), so they are not typed by its codegen.
 */

const serviceTokens = new DevTokenSource(SERVICE_IDENTITY.id, SERVICE_IDENTITY.roles);

const ADD_CONVERSATION_MEMBERS = /* GraphQL */ `
  mutation AddConversationMembers($conversationId: ID!, $userIds: [ID!]!) {
    addConversationMembers(conversationId: $conversationId, userIds: $userIds)
  }`;

const REGISTER_BOOKING = /* GraphQL */ `
  mutation RegisterBooking($bookingId: ID!, $guestId: ID!, $hostId: ID!) {
    registerBooking(bookingId: $bookingId, guestId: $guestId, hostId: $hostId)
  }`;

const PUBLISH_PRICE = /* GraphQL */ `
  mutation PublishPrice($input: PublishPriceInput!) {
    publishPrice(input: $input) { eventId }
  }`;

const PUBLISH_MESSAGE = /* GraphQL */ `
  mutation PublishMessage($input: PublishMessageInput!) {
    publishMessage(input: $input) { eventId }
  }`;

const PUBLISH_BOOKING_UPDATE = /* GraphQL */ `
  mutation PublishBookingUpdate($input: PublishBookingUpdateInput!) {
    publishBookingUpdate(input: $input) { eventId }
  }`;

const PUBLISH_NOTIFICATION = /* GraphQL */ `
  mutation PublishNotification($input: PublishNotificationInput!) {
    publishNotification(input: $input) { eventId }
  }`;

interface GraphQLResponse {
  data?: Record<string, unknown> | null;
  errors?: ReadonlyArray<{ message: string }>;
}

/** Runs one mutation over HTTP as the demo service; throws with the gateway's message on errors. */
async function asService(query: string, variables: Record<string, unknown>): Promise<void> {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization: `Bearer ${await serviceTokens.get()}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json().catch(() => ({}))) as GraphQLResponse;
  if (body.errors?.length) throw new Error(body.errors.map((error) => error.message).join('; '));
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
}

/**
 * Records who belongs to what (idempotent), as the message and booking services would: every demo
 * user a member of the demo conversation, Alice and Hank the guest and host of the demo booking
 * (so they may see whether the other is online before its first update).
 */
export async function ensureDemoDirectory(): Promise<void> {
  const { bookingId, guestId, hostId } = DEMO_BOOKING;
  await Promise.all([
    asService(ADD_CONVERSATION_MEMBERS, { conversationId: CONVERSATION_ID, userIds: DEMO_USERS.map((user) => user.id) }),
    asService(REGISTER_BOOKING, { bookingId, guestId, hostId }),
  ]);
}

export interface PriceChange {
  readonly hotelId: string;
  readonly amountMinor: number;
  readonly previousAmountMinor?: number;
  readonly currency: string;
}

export function publishPrice({ hotelId, amountMinor, previousAmountMinor, currency }: PriceChange): Promise<void> {
  return asService(PUBLISH_PRICE, {
    input: {
      hotelId,
      roomType: 'DOUBLE',
      price: { amountMinor, currency },
      previousPrice: previousAmountMinor === undefined ? null : { amountMinor: previousAmountMinor, currency },
      // The supplier charges 78 %: admins see the cost and the margin.
      supplierCost: { amountMinor: Math.round(amountMinor * 0.78), currency },
    },
  });
}

export function publishMessage(senderId: string, text: string): Promise<void> {
  return asService(PUBLISH_MESSAGE, {
    input: { conversationId: CONVERSATION_ID, messageId: newId('msg'), senderId, text },
  });
}

export type BookingStatus = (typeof BOOKING_STATUS_CYCLE)[number];

export function publishBookingUpdate(status: BookingStatus, previousStatus: BookingStatus | null): Promise<void> {
  return asService(PUBLISH_BOOKING_UPDATE, { input: { ...DEMO_BOOKING, status, previousStatus } });
}

export const NOTIFICATION_KINDS = ['SYSTEM', 'BOOKING', 'MESSAGE', 'PRICE_ALERT', 'PAYMENT'] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export function publishNotification(userId: string, kind: NotificationKind, title: string, body: string): Promise<void> {
  return asService(PUBLISH_NOTIFICATION, {
    input: { userId, kind, title, body, notificationId: newId('ntf') },
  });
}
