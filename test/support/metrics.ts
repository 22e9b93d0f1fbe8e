import type { App } from '../../src/app.js';

type CounterName =
  | 'limitTrips'
  | 'eventsDropped'
  | 'eventsPublished'
  | 'eventsDelivered'
  | 'eventsReceived'
  | 'websocketCloses'
  | 'authFailures'
  | 'amqpConsumed'
  | 'amqpDeadLettered'
  | 'amqpRedelivered'
  | 'amqpDuplicates'
  | 'amqpRequeued';

/** The sum of a counter's series whose labels include `labels`. */
export async function counterValue(app: App, counter: CounterName, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await app.metrics[counter].get();
  return values
    .filter((value) => Object.entries(labels).every(([key, wanted]) => (value.labels as Record<string, unknown>)[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}
