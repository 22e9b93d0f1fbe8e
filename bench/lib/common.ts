/**
 * Shared by the orchestrator, the load generator and the floor server: the selection sets
 * ("variants"), the deterministic event data a sequence number stands for, the expected result
 * per variant and role, clocks, and a mergeable latency histogram.
 */

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one host. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface Variant {
  readonly name: string;
  readonly query: string;
  /** Whether the selection contains admin-only fields (supplierCost / margin). */
  readonly adminFields: readonly ('supplierCost' | 'margin')[];
  /** A subscription to the subscriber's own room (no variables) rather than to a hotel. */
  readonly ownRoom?: boolean;
  /** The topic of an own-room variant for a user (the floor joins it; the gateway names it itself). */
  readonly ownTopic?: (userId: string) => string;
  /** A conversation's messages: the load generator's "hotel" is the conversation (variable `c`). */
  readonly conversation?: boolean;
  /** A conversation's presence (variable `c`): its frames are counted, not timed (the presence scenario). */
  readonly presence?: boolean;
}

/** The default selection set of every latency scenario. */
export const BASIC: Variant = {
  name: 'basic',
  query: 'subscription($h: ID!) { priceUpdated(hotelId: $h) { hotelId roomType price { amount currency } occurredAt } }',
  adminFields: [],
};

/** Scenario 6: a few different selection sets; `admin` ones include the admin-only fields. */
export const VARIANTS: readonly Variant[] = [
  BASIC,
  {
    name: 'costs',
    query: 'subscription($h: ID!) { priceUpdated(hotelId: $h) { hotelId roomType price { amountMinor currency } supplierCost { amountMinor currency } } }',
    adminFields: ['supplierCost'],
  },
  {
    name: 'full',
    query: 'subscription($h: ID!) { priceUpdated(hotelId: $h) { id hotelId roomType occurredAt price { amount amountMinor currency } previousPrice { amountMinor } supplierCost { amount currency } margin { amountMinor currency } } }',
    adminFields: ['supplierCost', 'margin'],
  },
  {
    name: 'lean',
    query: 'subscription($h: ID!) { priceUpdated(hotelId: $h) { roomType price { amountMinor } } }',
    adminFields: [],
  },
];

/** The inbox scenario: each user's own notifications (`title` carries `R-<seq>-<µs>` as roomType does). */
export const INBOX: Variant = {
  name: 'inbox',
  query: 'subscription { notificationCreated { notificationId title occurredAt } }',
  adminFields: [],
  ownRoom: true,
  ownTopic: (userId) => inboxTopic(userId),
};

/** The session scenario: all of a user's own bookings (no bookingId; `bookingId` carries `R-<seq>-<µs>`). */
export const BOOKINGS: Variant = {
  name: 'bookings',
  query: 'subscription { bookingUpdated { bookingId status occurredAt } }',
  adminFields: [],
  ownRoom: true,
  ownTopic: (userId) => bookingsTopic(userId),
};

/** The conversation scenario: a conversation's messages (`text` carries `R-<seq>-<µs>`). */
export const CONVERSATION: Variant = {
  name: 'conversation',
  query: 'subscription($c: ID!) { newMessage(conversationId: $c) { messageId text occurredAt } }',
  adminFields: [],
  conversation: true,
};

/** The presence scenario's watchers: a conversation's presence, a SNAPSHOT then CHANGES (gateway only). */
export const PRESENCE_WATCH: Variant = {
  name: 'presence',
  query: 'subscription($c: ID!) { presence(conversationId: $c) { kind changes { userId change } } }',
  adminFields: [],
  presence: true,
};

export const variantByQuery = new Map([...VARIANTS, INBOX, BOOKINGS, CONVERSATION, PRESENCE_WATCH].map((variant) => [variant.query, variant]));
export const variantByName = new Map([...VARIANTS, INBOX, BOOKINGS, CONVERSATION, PRESENCE_WATCH].map((variant) => [variant.name, variant]));

/** The gateway's topic of a conversation's messages, and the Redis set of its members (src/redis/keys.ts). */
export const conversationTopic = (conversationId: string) => `conversation:${conversationId}:message`;
export const conversationMembersKey = (conversationId: string) => `conversation:${conversationId}:members`;

/** The Redis message for message `seq` in a conversation, published now. */
export function messageEnvelopeNow(conversationId: string, seq: number): string {
  const micros = Math.round(nowMs() * 1000);
  return JSON.stringify({
    id: eventIdOf(seq),
    type: 'newMessage',
    version: 1,
    occurredAt: occurredAtOf(micros),
    data: { messageId: `m-${seq}`, conversationId, senderId: 'bench-sender', text: `R-${seq}-${micros}` },
  });
}

/** The gateway's topic of a user's notifications (src/events/topics.ts). */
export const inboxTopic = (userId: string) => `user:${userId}:notification`;

/** The gateway's topic of a user's bookings (src/events/topics.ts). */
export const bookingsTopic = (userId: string) => `user:${userId}:booking`;

/**
 * The Redis message for booking update `seq` of guest `userId`, published now: `bookingId` is
 * `R-<seq>-<µs>` (an id may contain `-`). The host is another user, so the gateway's ingress
 * accepts the message on the guest's channel (one of the event's two topics).
 */
export function bookingEnvelopeNow(userId: string, seq: number): string {
  const micros = Math.round(nowMs() * 1000);
  return JSON.stringify({
    id: eventIdOf(seq),
    type: 'bookingUpdated',
    version: 1,
    occurredAt: occurredAtOf(micros),
    data: { bookingId: `R-${seq}-${micros}`, hotelId: 'hotel-0', guestId: userId, hostId: 'bench-host', status: 'CONFIRMED', previousStatus: 'PENDING', checkIn: '2027-01-10', checkOut: '2027-01-12', totalPrice: { amountMinor: 25_000, currency: 'EUR' } },
  });
}

/** The notification a sequence number stands for, addressed to `userId`. */
export function notificationData(userId: string, seq: number, publishedAtMicros: number) {
  return { notificationId: `n-${seq}`, userId, kind: 'SYSTEM', title: `R-${seq}-${publishedAtMicros}`, body: '' };
}

/** The Redis message for notification `seq` to `userId`, published now. */
export function notificationEnvelopeNow(userId: string, seq: number): string {
  const micros = Math.round(nowMs() * 1000);
  return JSON.stringify({ id: eventIdOf(seq), type: 'notificationCreated', version: 1, occurredAt: occurredAtOf(micros), data: notificationData(userId, seq, micros) });
}

/**
 * The event a sequence number stands for. The publish time (µs since the epoch) and the sequence
 * number travel in `roomType`, which every selection set includes, so a receiver finds both with
 * one indexOf; price.amountMinor is the sequence number too.
 */
export function priceData(hotelId: string, seq: number, publishedAtMicros: number) {
  return {
    hotelId,
    roomType: `R-${seq}-${publishedAtMicros}`,
    price: { amountMinor: seq, currency: 'EUR' },
    previousPrice: { amountMinor: seq + 100, currency: 'EUR' },
    supplierCost: { amountMinor: Math.floor(seq / 2), currency: 'EUR' },
  };
}

export type PriceData = ReturnType<typeof priceData>;

/** The envelope's `occurredAt` for a publish time in µs (milliseconds, truncated). */
export function occurredAtOf(publishedAtMicros: number): string {
  return new Date(Math.floor(publishedAtMicros / 1000)).toISOString();
}

export function eventIdOf(seq: number): string {
  return `bench-${seq}`;
}

/** The Redis message for event `seq` on `hotelId`, published now. */
export function envelopeNow(hotelId: string, seq: number): string {
  const micros = Math.round(nowMs() * 1000);
  return JSON.stringify({ id: eventIdOf(seq), type: 'priceUpdated', version: 1, occurredAt: occurredAtOf(micros), data: priceData(hotelId, seq, micros) });
}

/** Parses `R-<seq>-<µs>` starting at `start` in a UTF-8 buffer; returns [seq, publishedAtMicros] or undefined. */
export function parseRoomType(buffer: Buffer, start: number): [number, number] | undefined {
  if (buffer[start] !== 82 /* R */ || buffer[start + 1] !== 45 /* - */) return undefined;
  let i = start + 2;
  let seq = 0;
  for (; i < buffer.length; i++) {
    const c = buffer[i]!;
    if (c === 45) break;
    seq = seq * 10 + (c - 48);
  }
  let micros = 0;
  for (i++; i < buffer.length; i++) {
    const c = buffer[i]!;
    if (c < 48 || c > 57) break;
    micros = micros * 10 + (c - 48);
  }
  return [seq, micros];
}

function money(amountMinor: number, currency: string) {
  return { amount: (amountMinor / 100).toFixed(2), amountMinor, currency };
}

/**
 * The `data.priceUpdated` a subscriber of `variant` must receive for an event, and the paths that
 * must carry a FORBIDDEN error (non-admins selecting admin-only fields).
 */
export function expectedResult(variant: Variant, admin: boolean, event: { id: string; occurredAt: string; data: PriceData }) {
  const d = event.data;
  const price = money(d.price.amountMinor, d.price.currency);
  const prev = money(d.previousPrice.amountMinor, d.previousPrice.currency);
  const cost = money(d.supplierCost.amountMinor, d.supplierCost.currency);
  const margin = money(d.price.amountMinor - d.supplierCost.amountMinor, d.price.currency);
  let result: Record<string, unknown>;
  switch (variant.name) {
    case 'basic':
      result = { hotelId: d.hotelId, roomType: d.roomType, price: { amount: price.amount, currency: price.currency }, occurredAt: event.occurredAt };
      break;
    case 'costs':
      result = { hotelId: d.hotelId, roomType: d.roomType, price: { amountMinor: price.amountMinor, currency: price.currency }, supplierCost: admin ? { amountMinor: cost.amountMinor, currency: cost.currency } : null };
      break;
    case 'full':
      result = {
        id: event.id,
        hotelId: d.hotelId,
        roomType: d.roomType,
        occurredAt: event.occurredAt,
        price,
        previousPrice: { amountMinor: prev.amountMinor },
        supplierCost: admin ? { amount: cost.amount, currency: cost.currency } : null,
        margin: admin ? { amountMinor: margin.amountMinor, currency: margin.currency } : null,
      };
      break;
    case 'lean':
      result = { roomType: d.roomType, price: { amountMinor: price.amountMinor } };
      break;
    default:
      throw new Error(`unknown variant ${variant.name}`);
  }
  const forbidden = admin ? [] : variant.adminFields.map((field) => ['priceUpdated', field]);
  return { data: { priceUpdated: result }, forbidden };
}

/** Stable JSON for comparisons (key order independent). */
export function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const object = value as Record<string, unknown>;
  return `{${Object.keys(object)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonical(object[key])}`)
    .join(',')}}`;
}

/**
 * A latency histogram that merges across processes: 1 µs buckets below 1 ms, then buckets 0.5 %
 * wide (so percentiles are within 0.5 %).
 */
export class Histogram {
  counts = new Map<number, number>();
  n = 0;
  sum = 0;
  max = 0;

  static index(ms: number): number {
    if (ms < 1) return Math.max(0, Math.floor(ms * 1000));
    return 1000 + Math.floor(Math.log(ms) / Math.log(1.005));
  }

  static value(index: number): number {
    if (index < 1000) return (index + 0.5) / 1000;
    return Math.pow(1.005, index - 1000 + 0.5);
  }

  record(ms: number): void {
    const i = Histogram.index(ms);
    this.counts.set(i, (this.counts.get(i) ?? 0) + 1);
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  toJSON() {
    return { counts: [...this.counts.entries()], n: this.n, sum: this.sum, max: this.max };
  }

  static from(parts: readonly ReturnType<Histogram['toJSON']>[]): Histogram {
    const h = new Histogram();
    for (const part of parts) {
      for (const [i, c] of part.counts) h.counts.set(i, (h.counts.get(i) ?? 0) + c);
      h.n += part.n;
      h.sum += part.sum;
      h.max = Math.max(h.max, part.max);
    }
    return h;
  }

  percentile(p: number): number {
    if (this.n === 0) return NaN;
    const target = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (const i of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(i)!;
      if (seen >= target) return Math.min(Histogram.value(i), this.max);
    }
    return this.max;
  }
}
