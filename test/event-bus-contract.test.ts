import { describe, expect, it } from 'vitest';
import { buildEvent, type EventDataInput, type EventType, type TidingsEvent } from '../src/events/contracts.js';
import { topics } from '../src/events/topics.js';
import { BACKENDS } from './support/backends.js';
import { backendParts } from './support/services.js';
import { take, waitUntil } from './support/wait.js';

/** One contract, two implementations: what every EventBus must do. */
function event<T extends EventType>(type: T, data: EventDataInput<T>): TidingsEvent {
  const built = buildEvent(type, data);
  if (!built.ok) throw new Error(built.issues.join('; '));
  return built.event as TidingsEvent;
}

const bookingBetween = (guestId: string, hostId: string) =>
  event('bookingUpdated', {
    bookingId: 'b1', hotelId: 'h1', guestId, hostId, status: 'CONFIRMED',
    checkIn: '2026-12-01', checkOut: '2026-12-02', totalPrice: { amountMinor: 100, currency: 'EUR' },
  });

const price = (hotelId: string, amountMinor: number) =>
  event('priceUpdated', { hotelId, roomType: 'DOUBLE', price: { amountMinor, currency: 'EUR' } });


describe.each(BACKENDS)('EventBus contract: %s', (backend) => {
  it('delivers an event to every subscriber of its topic, in publish order, and to no other topic', async () => {
    const { bus, waitForUpstream } = await backendParts(backend);
    const first = bus.subscribe(topics.hotelPrices('h1'));
    const second = bus.subscribe(topics.hotelPrices('h1'));
    const other = bus.subscribe(topics.hotelPrices('h2'));
    const firstValues = take(first, 3);
    const secondValues = take(second, 3);
    const otherValues = take(other, 1);
    await waitUntil(() => bus.subscriberCount(topics.hotelPrices('h1')) === 2 && bus.subscriberCount(topics.hotelPrices('h2')) === 1, 'subscribers');
    await waitForUpstream(topics.hotelPrices('h1'));
    await waitForUpstream(topics.hotelPrices('h2'));

    for (const amount of [1, 2, 3]) await bus.publish(price('h1', amount));
    await bus.publish(price('h2', 9));
    const amounts = (events: TidingsEvent[]) => events.map((e) => (e.type === 'priceUpdated' ? e.data.price.amountMinor : -1));
    expect(amounts(await firstValues)).toEqual([1, 2, 3]);
    expect(amounts(await secondValues)).toEqual([1, 2, 3]);
    expect(amounts(await otherValues)).toEqual([9]);
    expect(bus.activeTopicCount()).toBe(2);
  });

  it('publishes many events in order, each on all its topics, reporting each as published', async () => {
    const { bus, waitForUpstream } = await backendParts(backend);
    const h1 = bus.subscribe(topics.hotelPrices('h1'));
    const h2 = bus.subscribe(topics.hotelPrices('h2'));
    const h1Values = take(h1, 3);
    const h2Values = take(h2, 2);
    await waitUntil(() => bus.activeTopicCount() === 2, 'subscribers');
    await waitForUpstream(topics.hotelPrices('h1'));
    await waitForUpstream(topics.hotelPrices('h2'));
    const published = await bus.publishMany([price('h1', 1), price('h2', 10), price('h1', 2), price('h2', 20), price('h1', 3)]);
    expect(published).toEqual([true, true, true, true, true]);
    const amounts = (events: TidingsEvent[]) => events.map((e) => (e.type === 'priceUpdated' ? e.data.price.amountMinor : -1));
    expect(amounts(await h1Values)).toEqual([1, 2, 3]);
    expect(amounts(await h2Values)).toEqual([10, 20]);
    expect(await bus.publishMany([])).toEqual([]);
  });

  it('publishes a booking update to both parties', async () => {
    const { bus, waitForUpstream } = await backendParts(backend);
    const guest = bus.subscribe(topics.userBookings('guest'));
    const host = bus.subscribe(topics.userBookings('host'));
    const guestValues = take(guest, 1);
    const hostValues = take(host, 1);
    await waitUntil(() => bus.activeTopicCount() === 2, 'subscribers');
    await waitForUpstream(topics.userBookings('guest'));
    await waitForUpstream(topics.userBookings('host'));
    const booking = bookingBetween('guest', 'host');
    await bus.publish(booking);
    expect((await guestValues)[0]?.id).toBe(booking.id);
    expect((await hostValues)[0]?.id).toBe(booking.id);
  });

  it('publishes an event id once within its window, on all its topics, and again after the window', async () => {
    const { bus, waitForUpstream } = await backendParts(backend);
    const guestValues = take(bus.subscribe(topics.userBookings('guest')), 3);
    const hostValues = take(bus.subscribe(topics.userBookings('host')), 3);
    await waitUntil(() => bus.activeTopicCount() === 2, 'subscribers');
    await waitForUpstream(topics.userBookings('guest'));
    await waitForUpstream(topics.userBookings('host'));
    const booking = bookingBetween('guest', 'host');
    const later = { ...booking, id: `${booking.id}-later` } as TidingsEvent;
    expect(await bus.publishOnce(booking, 300)).toBe(true);
    expect(await bus.publishOnce(booking, 300)).toBe(false);
    expect(await bus.publishOnce(later, 300)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    // The window has passed: the same id goes out again.
    expect(await bus.publishOnce(booking, 300)).toBe(true);
    const ids = (events: TidingsEvent[]) => events.map((e) => e.id);
    expect(ids(await guestValues)).toEqual([booking.id, later.id, booking.id]);
    expect(ids(await hostValues)).toEqual([booking.id, later.id, booking.id]);
  });

  it('forgets a subscriber that returns, and the topic when the last one leaves', async () => {
    const { bus } = await backendParts(backend);
    const a = bus.subscribe(topics.hotelPrices('h1'));
    const b = bus.subscribe(topics.hotelPrices('h1'));
    void a.next();
    void b.next();
    await waitUntil(() => bus.subscriberCount(topics.hotelPrices('h1')) === 2, 'two subscribers');
    await a.return?.();
    await waitUntil(() => bus.subscriberCount(topics.hotelPrices('h1')) === 1, 'one left');
    await b.return?.();
    await waitUntil(() => bus.activeTopicCount() === 0, 'no topics');
  });

  it('completes every stream on close()', async () => {
    const { bus } = await backendParts(backend);
    const stream = bus.subscribe(topics.chatSession('s1'));
    const next = stream.next();
    await waitUntil(() => bus.activeTopicCount() === 1, 'subscriber');
    await bus.close();
    expect(await next).toEqual({ done: true, value: undefined });
    expect(bus.activeTopicCount()).toBe(0);
  });

  it('runs a listener synchronously per event, in order, uncounted unless it counts subscribers, until it stops or the bus closes', async () => {
    const { bus, waitForUpstream } = await backendParts(backend);
    const topic = topics.hotelPrices('h1');
    const heard: number[] = [];
    let ended = 0;
    const listening = bus.listen(topic, { onEvent: (e) => heard.push(e.type === 'priceUpdated' ? e.data.price.amountMinor : -1), onEnd: () => ended++ });
    expect(bus.subscriberCount(topic)).toBe(0);
    // A shared delivery counts its members through its listener.
    listening.addSubscribers(2);
    expect(bus.subscriberCount(topic)).toBe(2);
    listening.addSubscribers(-1);
    expect(bus.subscriberCount(topic)).toBe(1);
    await waitForUpstream(topic);
    for (const amount of [1, 2, 3]) await bus.publish(price('h1', amount));
    await waitUntil(() => heard.length === 3, 'three events heard');
    expect(heard).toEqual([1, 2, 3]);
    // A second listener keeps the topic subscribed while the first stops.
    let secondEnded = 0;
    const second = bus.listen(topic, { onEvent: () => undefined, onEnd: () => secondEnded++ }, { counted: true });
    expect(bus.subscriberCount(topic)).toBe(2);
    listening.stop();
    expect(bus.subscriberCount(topic)).toBe(1);
    await bus.publish(price('h1', 4));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(heard).toEqual([1, 2, 3]);
    expect(ended).toBe(0);

    await bus.close();
    expect(secondEnded).toBe(1);
    second.stop();
    expect(secondEnded).toBe(1);
    expect(ended).toBe(0);
    expect(bus.subscriberCount(topic)).toBe(0);
    // A shutting-down bus ends a new listener at once.
    let lateEnded = 0;
    bus.listen(topic, { onEvent: () => undefined, onEnd: () => lateEnded++ });
    expect(lateEnded).toBe(1);
    expect(bus.activeTopicCount()).toBe(0);
  });
});
