import { createClient as createSseClient } from 'graphql-sse';
import { describe, expect, it, onTestFinished } from 'vitest';
import { topics } from '../src/events/topics.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { counterValue } from './support/metrics.js';
import { PRICE_UPDATED, PRICE_UPDATED_ADMIN_FIELDS, priceInput, PUBLISH_PRICE } from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record, type Recording } from './support/ws-client.js';

describe.each(BACKENDS)('shared deliveries over WebSocket (%s)', (backend) => {
  it('serve each subscriber exactly what its selection and roles allow, one execution per group', async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), ALLOW_ANONYMOUS: 'true' });
    const hotelId = 'shared-hotel';
    const subscribe = async (who: string | undefined, roles: Array<'user' | 'admin'>, query: string) => {
      const connection = connectWs(gateway.wsUrl, who ? await tokenFor(who, roles) : undefined);
      return { connection, recording: record(connection.client, query, { hotelId }) };
    };
    const users = await Promise.all(['u1', 'u2', 'u3'].map((who) => subscribe(who, ['user'], PRICE_UPDATED_ADMIN_FIELDS)));
    const admins = await Promise.all(['a1', 'a2'].map((who) => subscribe(who, ['user', 'admin'], PRICE_UPDATED_ADMIN_FIELDS)));
    const plain = await Promise.all(['p1', 'p2'].map((who) => subscribe(who, ['user'], PRICE_UPDATED)));
    const anonymous = await subscribe(undefined, [], PRICE_UPDATED);
    // The same operation for a user over SSE: executed per subscriber, the reference.
    const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${await tokenFor('s1')}` }, retryAttempts: 0 });
    onTestFinished(() => sse.dispose());
    const overSse: Array<Record<string, unknown>> = [];
    sse.subscribe({ query: PRICE_UPDATED_ADMIN_FIELDS, variables: { hotelId } }, { next: (value) => void overSse.push(value as never), error: () => undefined, complete: () => undefined });
    await gateway.waitForSubscribers(topics.hotelPrices(hotelId), 9);
    // Non-admin users with the admin selection; admins; users with the plain selection; anonymous.
    expect(gateway.app.webSockets.sharedGroupCount()).toBe(4);

    await gateway.publish(PUBLISH_PRICE, priceInput(hotelId, 15_000));
    const all: Recording[] = [...users, ...admins, ...plain, anonymous].map((subscriber) => subscriber.recording);
    await Promise.all(all.map((recording) => recording.waitForResults(1)));
    await waitUntil(() => overSse.length === 1, 'the SSE reference result');

    const [reference] = overSse;
    for (const { recording } of users) expect(recording.results[0]).toEqual(reference);
    expect(users[0]?.recording.results[0]?.data?.['priceUpdated']).toMatchObject({ supplierCost: null, margin: null, price: { amount: '150.00' } });
    expect(users[0]?.recording.results[0]?.errors?.map((error) => [error.extensions?.['code'], error.path?.join('.')])).toEqual([
      ['FORBIDDEN', 'priceUpdated.supplierCost'],
      ['FORBIDDEN', 'priceUpdated.margin'],
    ]);
    for (const { recording } of admins) {
      expect(recording.results[0]?.errors).toBeUndefined();
      expect(recording.results[0]?.data?.['priceUpdated']).toMatchObject({ supplierCost: { amount: '100.00' }, margin: { amount: '50.00' } });
    }
    for (const { recording } of [...plain, anonymous]) {
      expect(recording.results[0]?.errors).toBeUndefined();
      expect(Object.keys(recording.results[0]?.data?.['priceUpdated'] as object).sort()).toEqual(['hotelId', 'id', 'occurredAt', 'previousPrice', 'price', 'roomType']);
    }
    expect(await counterValue(gateway.app, 'eventsDelivered', { field: 'priceUpdated' })).toBe(9);
    expect(await counterValue(gateway.app, 'eventsDropped', { reason: 'unauthorized_field' })).toBe(4);

    // Members leave one by one; the group goes when its last member does.
    users[0]?.recording.unsubscribe();
    await gateway.publish(PUBLISH_PRICE, priceInput(hotelId, 16_000));
    await users[1]?.recording.waitForResults(2);
    expect(users[0]?.recording.results).toHaveLength(1);
    for (const subscriber of [...users, ...admins, ...plain, anonymous]) await subscriber.connection.client.dispose();
    sse.dispose();
    await waitUntil(() => gateway.app.webSockets.sharedGroupCount() === 0, 'every group to end');
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topics.hotelPrices(hotelId)) === 0, 'the topic to be left');
  });
});
