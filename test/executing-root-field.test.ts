import { parse } from 'graphql';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { buildSchema } from '../src/schema/index.js';
import { executingRootField } from '../src/server/executing-root-field.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { PUBLISH_NOTIFICATION } from './support/operations.js';
import { connectWs, record } from './support/ws-client.js';

const schema = buildSchema();
const fieldOf = (query: string, variables?: Record<string, unknown>, operationName?: string) => executingRootField(schema, parse(query), operationName, variables);

describe('executingRootField', () => {
  it('is the first field graphql will collect, after @skip, @include and fragments', () => {
    expect(fieldOf('subscription { priceUpdated(hotelId: "h") { id } }')).toBe('priceUpdated');
    expect(fieldOf('subscription { priceUpdated(hotelId: "h") @skip(if: true) { id } notificationCreated { id } }')).toBe('notificationCreated');
    expect(fieldOf('subscription { priceUpdated(hotelId: "h") @include(if: false) { id } notificationCreated { id } }')).toBe('notificationCreated');
    expect(fieldOf('subscription($s: Boolean!) { priceUpdated(hotelId: "h") @skip(if: $s) { id } notificationCreated { id } }', { s: true })).toBe('notificationCreated');
    expect(fieldOf('subscription($s: Boolean!) { priceUpdated(hotelId: "h") @skip(if: $s) { id } notificationCreated { id } }', { s: false })).toBe('priceUpdated');
    expect(fieldOf('subscription($s: Boolean = true) { priceUpdated(hotelId: "h") @skip(if: $s) { id } notificationCreated { id } }')).toBe('notificationCreated');
    expect(fieldOf('subscription { ... on Subscription @skip(if: true) { priceUpdated(hotelId: "h") { id } } ...N } fragment N on Subscription { notificationCreated { id } }')).toBe(
      'notificationCreated',
    );
    expect(fieldOf('subscription A { priceUpdated(hotelId: "h") { id } } subscription B { notificationCreated { id } }', {}, 'B')).toBe('notificationCreated');
  });

  it('is undefined when the variables do not coerce (the pipeline answers those)', () => {
    expect(fieldOf('subscription($s: Boolean!) { priceUpdated(hotelId: "h") @skip(if: $s) { id } }', { s: 'yes' })).toBeUndefined();
    expect(fieldOf('subscription($s: Boolean!) { priceUpdated(hotelId: "h") @skip(if: $s) { id } }', {})).toBeUndefined();
  });
});

describe('a subscription whose first written field is skipped', () => {
  it('runs the field that executes, over WebSocket, and logs no server error', async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
          done();
        },
      }),
    );
    const gateway = await startGateway({}, { logger });
    const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const literal = record(alice.client, 'subscription { priceUpdated(hotelId: "h1") @skip(if: true) { id } notificationCreated { notificationId } }');
    // (With a variable in @skip, graphql's own single-field validation refuses the document.)
    const fragment = record(
      alice.client,
      'subscription { ...Skipped notificationCreated { notificationId } } fragment Skipped on Subscription { priceUpdated(hotelId: "h1") @skip(if: true) { id } }',
    );
    await gateway.waitForSubscribers(topics.userNotifications('alice'), 2);
    await gateway.publish(PUBLISH_NOTIFICATION, { input: { notificationId: 'n-1', userId: 'alice', kind: 'SYSTEM', title: 'Hello' } });
    for (const recording of [literal, fragment]) {
      const [result] = await recording.waitForResults(1);
      expect(result).toEqual({ data: { notificationCreated: { notificationId: 'n-1' } } });
    }
    expect(gateway.app.services.bus.subscriberCount(topics.hotelPrices('h1'))).toBe(0);
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
  });
});
