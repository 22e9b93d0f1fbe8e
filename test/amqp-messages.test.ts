import { describe, expect, it } from 'vitest';
import { derivedEventId, kindOf, mapMessage, notificationKindOf, toMinorUnits, type MappingContext } from '../src/ingress/amqp-messages.js';

/** The mapping rules of docs/INGRESS.md, one by one, on the messages as the services send them. */

const parties = new Map([['b-1', { guestId: 'gina', hostId: 'hugo' }]]);
const context: MappingContext = { maxBytes: 64 * 1024, bookingCurrency: 'EUR', partiesOf: async (id) => parties.get(id) };
const map = (routingKey: string, body: unknown, overrides: Partial<MappingContext> = {}) =>
  mapMessage(routingKey, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), { ...context, ...overrides });

const messageSent = {
  conversationId: 'c-1',
  senderId: 'gina',
  recipientId: 'hugo',
  message: { id: 'm-1', content: 'See you at 3', timestamp: '2026-12-07T10:00:00.000Z' },
  timestamp: '2026-12-07T10:00:00.120Z',
};
const booking = {
  bookingId: 'b-1',
  userId: 'gina',
  status: 'confirmed',
  booking: { id: 'b-1', listingId: 'listing-7', checkIn: '2027-01-10T00:00:00.000Z', checkOut: '2027-01-14T00:00:00.000Z', totalPrice: 480.5 },
  timestamp: '2026-12-07T10:01:00.000Z',
};
const notification = {
  notificationId: 'n-1',
  userId: 'gina',
  type: 'booking',
  title: 'Booking confirmed',
  message: 'Your stay is confirmed',
  data: { bookingId: 'b-1' },
  timestamp: '2026-12-07T10:01:02.000Z',
};

describe('RabbitMQ message mapping', () => {
  it('maps message.sent to newMessage', async () => {
    expect(await map('message.sent', messageSent)).toEqual({
      ok: true,
      event: {
        id: derivedEventId('message_sent', 'm-1'),
        type: 'newMessage',
        version: 1,
        occurredAt: '2026-12-07T10:00:00.000Z',
        data: { messageId: 'm-1', conversationId: 'c-1', senderId: 'gina', text: 'See you at 3' },
      },
    });
  });

  it('accepts integer ids, as a SQL-backed service sends them', async () => {
    const mapped = await map('message.sent', { ...messageSent, conversationId: 42, senderId: 7, message: { ...messageSent.message, id: 1001 } });
    expect(mapped.ok && mapped.event.data).toEqual({ messageId: '1001', conversationId: '42', senderId: '7', text: 'See you at 3' });
  });

  it('maps booking.* to bookingUpdated with the registered parties and the configured currency', async () => {
    const mapped = await map('booking.confirmed', booking);
    expect(mapped).toEqual({
      ok: true,
      event: {
        id: derivedEventId('booking', 'b-1\nCONFIRMED\n2026-12-07T10:01:00.000Z'),
        type: 'bookingUpdated',
        version: 1,
        occurredAt: '2026-12-07T10:01:00.000Z',
        data: {
          bookingId: 'b-1',
          hotelId: 'listing-7',
          guestId: 'gina',
          hostId: 'hugo',
          status: 'CONFIRMED',
          previousStatus: null,
          checkIn: '2027-01-10',
          checkOut: '2027-01-14',
          totalPrice: { amountMinor: 48_050, currency: 'EUR' },
        },
      },
    });
    // The host may be the user the message names, too.
    expect((await map('booking.confirmed', { ...booking, userId: 'hugo' })).ok).toBe(true);
  });

  it('reads every booking status, in any spelling, and takes the body\'s under a generic key', async () => {
    for (const [key, status, expected] of [
      ['booking.cancelled', 'cancelled', 'CANCELLED'],
      ['booking.checked_in', 'checked-in', 'CHECKED_IN'],
      ['booking.updated', 'No_Show', 'NO_SHOW'],
      ['booking.pending', 'PENDING', 'PENDING'],
    ] as const) {
      const mapped = await map(key, { ...booking, status });
      expect(mapped.ok && mapped.event.type === 'bookingUpdated' && mapped.event.data.status).toBe(expected);
    }
  });

  it('refuses a booking it cannot map without guessing', async () => {
    expect(await map('booking.confirmed', { ...booking, bookingId: 'b-404', booking: { ...booking.booking, id: 'b-404' } })).toMatchObject({ ok: false, reason: 'unknown_booking' });
    expect(await map('booking.confirmed', { ...booking, userId: 'mallory' })).toMatchObject({ ok: false, reason: 'party_mismatch' });
    expect(await map('booking.confirmed', { ...booking, status: 'teleported' })).toMatchObject({ ok: false, reason: 'shape', issues: [expect.stringContaining('teleported')] });
    expect(await map('booking.cancelled', booking)).toMatchObject({ ok: false, reason: 'shape', issues: [expect.stringContaining('contradicts')] });
    expect(await map('booking.confirmed', { ...booking, booking: { ...booking.booking, id: 'b-2' } })).toMatchObject({ ok: false, reason: 'shape' });
    expect(await map('booking.confirmed', { ...booking, booking: { ...booking.booking, totalPrice: 10.005 } })).toMatchObject({ ok: false, reason: 'shape', issues: [expect.stringContaining('decimals')] });
    expect(await map('booking.confirmed', { ...booking, booking: { ...booking.booking, totalPrice: 480.5 } }, { bookingCurrency: 'JPY' })).toMatchObject({ ok: false, reason: 'shape' });
    expect(await map('booking.confirmed', { ...booking, booking: { ...booking.booking, totalPrice: -1 } })).toMatchObject({ ok: false, reason: 'shape' });
    expect(await map('booking.confirmed', { ...booking, booking: { ...booking.booking, checkOut: '2027-01-09' } })).toMatchObject({ ok: false, reason: 'shape', issues: [expect.stringContaining('checkOut')] });
  });

  it('converts prices to minor units exactly', () => {
    expect(toMinorUnits(199.99, 'EUR')).toBe(19_999);
    expect(toMinorUnits(0.1 + 0.2, 'EUR')).toBe(30);
    expect(toMinorUnits(1500, 'JPY')).toBe(1_500);
    expect(toMinorUnits(1.234, 'KWD')).toBe(1_234);
    expect(toMinorUnits(10.005, 'EUR')).toBeUndefined();
  });

  it('maps notification.created, with unknown types to SYSTEM', async () => {
    expect(await map('notification.created', notification)).toEqual({
      ok: true,
      event: {
        id: derivedEventId('notification_created', 'n-1'),
        type: 'notificationCreated',
        version: 1,
        occurredAt: '2026-12-07T10:01:02.000Z',
        data: { notificationId: 'n-1', userId: 'gina', kind: 'BOOKING', title: 'Booking confirmed', body: 'Your stay is confirmed', link: null },
      },
    });
    expect(notificationKindOf('price-alert')).toBe('PRICE_ALERT');
    expect(notificationKindOf('Payment')).toBe('PAYMENT');
    expect(notificationKindOf('price')).toBe('PRICE_ALERT');
    expect(notificationKindOf('chat')).toBe('MESSAGE');
    expect(notificationKindOf('review_request')).toBe('SYSTEM');
    expect(notificationKindOf(undefined)).toBe('SYSTEM');
    const linked = await map('notification.created', { ...notification, type: 'promo', message: null, data: { link: '/bookings/b-1' } });
    expect(linked.ok && linked.event.data).toMatchObject({ kind: 'SYSTEM', body: '', link: '/bookings/b-1' });
    expect(await map('notification.created', { ...notification, data: { link: 'javascript:alert(1)' } })).toMatchObject({ ok: false, reason: 'shape', issues: [expect.stringContaining('link')] });
    expect(await map('notification.created', { ...notification, title: 'x'.repeat(201) })).toMatchObject({ ok: false, reason: 'shape' });
  });

  it("maps price.updated in Tidings' own envelope, keeping its id", async () => {
    const envelope = { id: 'p-1', type: 'priceUpdated', version: 1, occurredAt: '2026-12-07T10:02:00Z', data: { hotelId: 'h-1', roomType: 'double', price: { amountMinor: 12_900, currency: 'EUR' } } };
    const mapped = await map('price.updated', envelope);
    expect(mapped.ok && mapped.event).toMatchObject({ id: 'p-1', type: 'priceUpdated', data: { hotelId: 'h-1', previousPrice: null, supplierCost: null } });
    expect(await map('price.updated', { ...envelope, version: 2 })).toMatchObject({ ok: false, reason: 'version' });
    expect(await map('price.updated', { ...envelope, type: 'newMessage' })).toMatchObject({ ok: false, reason: 'shape' });
  });

  it('names the reason for every other poison message', async () => {
    expect(await map('message.sent', '{"conversationId":')).toMatchObject({ ok: false, reason: 'invalid_json' });
    expect(await mapMessage('message.sent', Buffer.from([0x7b, 0xff, 0x7d]), context)).toMatchObject({ ok: false, reason: 'invalid_json', issues: ['not UTF-8'] });
    expect(await map('message.sent', messageSent, { maxBytes: 50 })).toMatchObject({ ok: false, reason: 'too_large' });
    expect(await map('user.deleted', { userId: 'gina' })).toMatchObject({ ok: false, reason: 'unknown_routing_key' });
    expect(await map('booking.confirmed.extra', booking)).toMatchObject({ ok: false, reason: 'unknown_routing_key' });
    expect(await map('message.sent', { ...messageSent, message: { ...messageSent.message, content: '' } })).toMatchObject({ ok: false, reason: 'shape' });
    expect(await map('message.sent', { ...messageSent, conversationId: 'has space' })).toMatchObject({ ok: false, reason: 'shape' });
    expect(await map('message.sent', { ...messageSent, message: { ...messageSent.message, timestamp: 'yesterday' } })).toMatchObject({ ok: false, reason: 'shape' });
    expect(await map('message.sent', null)).toMatchObject({ ok: false, reason: 'shape' });
  });

  it('derives one event id per message, the same on every delivery, never shared by two messages', () => {
    expect(derivedEventId('message_sent', 'm-1')).toBe(derivedEventId('message_sent', 'm-1'));
    expect(derivedEventId('message_sent', 'm-1')).not.toBe(derivedEventId('notification_created', 'm-1'));
    expect(derivedEventId('message_sent', 'm-1')).not.toBe(derivedEventId('message_sent', 'm-2'));
    expect(derivedEventId('message_sent', 'm-1')).toMatch(/^amqp-[A-Za-z0-9_-]{32}$/);
    expect(kindOf('booking.confirmed')).toBe('booking');
    expect(kindOf('bookings.confirmed')).toBe('other');
  });

  it('hands a failed parties lookup back to the caller (the ingress retries it later)', async () => {
    await expect(map('booking.confirmed', booking, { partiesOf: () => Promise.reject(new Error('Connection is closed.')) })).rejects.toThrow('Connection is closed.');
  });
});
