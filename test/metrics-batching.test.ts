import { describe, expect, it } from 'vitest';
import { createMetrics } from '../src/metrics/metrics.js';

/** The value of one series in a Prometheus exposition, or undefined when it is absent. */
function valueOf(text: string, series: string): number | undefined {
  const line = text.split('\n').find((each) => each.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('per-event metrics counted in batches', () => {
  it('shows every delivery, arrival and latency at each scrape, and nothing twice', async () => {
    const metrics = createMetrics();
    metrics.countDelivered('newMessage', 5);
    metrics.countDelivered('newMessage', 0);
    metrics.countDelivered('priceUpdated', 1);
    metrics.countArrival('newMessage', 'redis', 0.002);
    metrics.countArrival('newMessage', 'gateway', 0.2);
    // A publisher's clock ahead of ours: counted as received, not as a latency.
    metrics.countArrival('newMessage', 'redis', -1);
    let text = await metrics.registry.metrics();
    expect(valueOf(text, 'tidings_events_delivered_total{field="newMessage"}')).toBe(5);
    expect(valueOf(text, 'tidings_events_delivered_total{field="priceUpdated"}')).toBe(1);
    expect(valueOf(text, 'tidings_events_received_total{type="newMessage",source="redis"}')).toBe(2);
    expect(valueOf(text, 'tidings_events_received_total{type="newMessage",source="gateway"}')).toBe(1);
    expect(valueOf(text, 'tidings_delivery_latency_seconds_count{type="newMessage"}')).toBe(2);
    expect(valueOf(text, 'tidings_delivery_latency_seconds_bucket{le="0.0025",type="newMessage"}')).toBe(1);

    metrics.countDelivered('newMessage', 2);
    text = await metrics.registry.metrics();
    expect(valueOf(text, 'tidings_events_delivered_total{field="newMessage"}')).toBe(7);
    expect(valueOf(text, 'tidings_delivery_latency_seconds_count{type="newMessage"}')).toBe(2);
    // get() reads them the same way.
    expect((await metrics.eventsDelivered.get()).values.find((value) => value.labels['field'] === 'priceUpdated')?.value).toBe(1);
  });

  it('counts full batches of latencies and the rest alike', async () => {
    const metrics = createMetrics();
    // Three full batches of 256 go to the histogram as they fill, the last 232 at the scrape.
    for (let index = 0; index < 1_000; index++) metrics.countArrival('priceUpdated', 'redis', 0.001);
    const text = await metrics.registry.metrics();
    expect(valueOf(text, 'tidings_delivery_latency_seconds_count{type="priceUpdated"}')).toBe(1_000);
  });
});
