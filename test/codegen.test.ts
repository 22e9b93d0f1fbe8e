import { readFileSync } from 'node:fs';
import { generate } from '@graphql-codegen/cli';
import { print } from 'graphql';
import { describe, expect, it } from 'vitest';
import config from '../codegen.js';
import type { PriceUpdatedSubscription as PriceUpdatedResult } from '../client/src/generated/graphql.js';
import { PriceUpdatedSubscription } from '../client/src/operations.js';
import { topics } from '../src/events/topics.js';
import { priceInput, PUBLISH_PRICE } from './support/operations.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { connectWs, record } from './support/ws-client.js';

describe('generated client types', () => {
  it('are up to date with schema.graphql and client/src (run `npm run codegen` after changing either)', async () => {
    const outputs = (await generate({ ...config, silent: true }, false)) as Array<{ filename: string; content: string }>;
    expect(outputs.length).toBeGreaterThan(0);
    for (const output of outputs) {
      const committed = readFileSync(new URL(`../${output.filename}`, import.meta.url), 'utf8');
      expect(committed, output.filename).toBe(output.content);
    }
  }, 60_000);

  it('type a generated subscription document that runs against the gateway', async () => {
    const gateway = await startGateway();
    const { client } = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const prices = record<PriceUpdatedResult>(client, print(PriceUpdatedSubscription), { hotelId: 'hotel-7' });
    await gateway.waitForSubscribers(topics.hotelPrices('hotel-7'));
    await gateway.publish(PUBLISH_PRICE, priceInput('hotel-7', 9_999));
    const [result] = await prices.waitForResults(1);
    expect(result?.errors).toBeUndefined();
    // Typed by the generated result type: a schema change that breaks this access fails `tsc`.
    const update = result?.data?.priceUpdated;
    expect(update?.price.amount).toBe('99.99');
    expect(update?.roomType).toBe('DOUBLE');
    expect(update?.previousPrice?.currency).toBe('EUR');
  });
});
