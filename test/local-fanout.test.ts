import { describe, expect, it } from 'vitest';
import { LocalFanout, type Listening } from '../src/bus/local-fanout.js';
import { buildEvent, type TidingsEvent } from '../src/events/contracts.js';

const price = (amountMinor: number): TidingsEvent => {
  const built = buildEvent('priceUpdated', { hotelId: 'h1', roomType: 'DOUBLE', price: { amountMinor, currency: 'EUR' } });
  if (!built.ok) throw new Error(built.issues.join('; '));
  return built.event as TidingsEvent;
};

// The per-topic list is changed by listeners while an event is being handed out: each change
// must behave as with a set (stopped ones skipped, later arrivals included), in arrival order.
describe('LocalFanout', () => {
  it('hands an event to listeners in arrival order while they stop themselves, stop others or add new ones', () => {
    const active: string[] = [];
    const idle: string[] = [];
    const fanout = new LocalFanout({ onTopicActive: (topic) => active.push(topic), onTopicIdle: (topic) => idle.push(topic) });
    const heard: string[] = [];
    const listenings = new Map<string, Listening>();
    const listen = (name: string, onEvent: () => void = () => undefined) =>
      listenings.set(name, fanout.listen('t', { onEvent: () => (heard.push(name), onEvent()), onEnd: () => undefined }));
    listen('a', () => listenings.get('a')!.stop());
    listen('b', () => listenings.get('c')!.stop());
    listen('c');
    listen('d', () => {
      if (!listenings.has('e')) listen('e');
    });
    expect(active).toEqual(['t']);

    fanout.deliver('t', price(1));
    expect(heard).toEqual(['a', 'b', 'd', 'e']);
    heard.length = 0;
    fanout.deliver('t', price(2));
    expect(heard).toEqual(['b', 'd', 'e']);

    for (const name of ['b', 'd', 'e']) listenings.get(name)!.stop();
    expect(idle).toEqual(['t']);
    expect(fanout.isActive('t')).toBe(false);
    heard.length = 0;
    fanout.deliver('t', price(3));
    expect(heard).toEqual([]);
  });

  it('counts counted listeners and what listeners count for; ends every listener once at shutdown', () => {
    const fanout = new LocalFanout();
    let ends = 0;
    const counted = fanout.listen('t', { onEvent: () => undefined, onEnd: () => ends++ }, { counted: true });
    const group = fanout.listen('t', { onEvent: () => undefined, onEnd: () => ends++ });
    group.addSubscribers(3);
    expect(fanout.subscriberCount('t')).toBe(4);
    group.stop();
    // Stopped: what it counted for is gone, and it changes nothing any more.
    group.addSubscribers(5);
    expect(fanout.subscriberCount('t')).toBe(1);
    fanout.endAll();
    expect(ends).toBe(1);
    counted.stop();
    expect(ends).toBe(1);
    expect(fanout.activeTopicCount()).toBe(0);
  });
});
