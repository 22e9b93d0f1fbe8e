/** The demo's fixed cast and places: three development users, three hotels, one conversation, one booking. */

export type DemoRole = 'user' | 'host' | 'admin' | 'service';

export interface DemoUser {
  readonly id: string;
  readonly name: string;
  /** What the user is in the story. */
  readonly label: string;
  readonly roles: readonly DemoRole[];
}

export const DEMO_USERS: readonly DemoUser[] = [
  { id: 'alice', name: 'Alice', label: 'guest', roles: ['user'] },
  { id: 'hank', name: 'Hank', label: 'host', roles: ['user', 'host'] },
  { id: 'root', name: 'Root', label: 'admin', roles: ['user', 'admin'] },
];

/** The identity the app borrows to play the backend services (development only). */
export const SERVICE_IDENTITY = { id: 'demo-service', roles: ['service'] as const satisfies readonly DemoRole[] };

export const HOTELS = [
  { id: 'hotel-1', name: 'Harbour View', city: 'Lisbon' },
  { id: 'hotel-2', name: 'Old Town Inn', city: 'Kraków' },
  { id: 'hotel-3', name: 'Alpine Lodge', city: 'Innsbruck' },
] as const;

export const CONVERSATION_ID = 'conv-demo';

export const DEMO_BOOKING = {
  bookingId: 'b-demo',
  hotelId: 'hotel-1',
  guestId: 'alice',
  hostId: 'hank',
  checkIn: '2026-12-24',
  checkOut: '2026-12-27',
  totalPrice: { amountMinor: 45_000, currency: 'EUR' },
} as const;

export const BOOKING_STATUS_CYCLE = ['PENDING', 'CONFIRMED', 'CHECKED_IN', 'CHECKED_OUT'] as const;

/** Who else speaks in the demo conversation: the hotel's concierge, played by the service panel. */
export const CONCIERGE = { id: 'concierge', name: 'Concierge' } as const;

/** "Hank" for hank, "Concierge" for concierge; other ids as they are. */
export function displayName(userId: string): string {
  if (userId === CONCIERGE.id) return CONCIERGE.name;
  return DEMO_USERS.find((user) => user.id === userId)?.name ?? userId;
}

export function hotelName(hotelId: string): string {
  return HOTELS.find((hotel) => hotel.id === hotelId)?.name ?? hotelId;
}

/** Formats a GraphQL Money value: `amount` is an exact decimal string in major units. */
export function formatMoney(money: { amount: string; currency: string }): string {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: money.currency }).format(Number(money.amount));
  } catch {
    return `${money.amount} ${money.currency}`;
  }
}

export function formatTime(iso: string): string {
  return new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** A readable label for an enum value: CHECKED_IN → "Checked in". */
export function humanize(value: string): string {
  const words = value.toLowerCase().replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** An id for events the demo publishes (letters, digits and "-" only, as the gateway requires). */
export function newId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
