import { GraphQLError } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import type { Plugin } from 'graphql-yoga';
import { describe, expect, it, onTestFinished } from 'vitest';
import { topics } from '../src/events/topics.js';
import type { GraphQLContext } from '../src/schema/context.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { PRICE_UPDATED, priceInput, PUBLISH_PRICE } from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * A plugin added to the pipeline tomorrow (here: an onSubscribe check that refuses one hotel, and
 * counts what it saw) applies to every subscription on every transport, and the subscriptions it
 * lets through are still delivered by the shared deliveries. Prometheus' subscribe phase, a
 * plugin too, counts the WebSocket subscribes as well as the SSE ones.
 */
describe.each(BACKENDS)('one pipeline for every subscription (%s)', (backend) => {
  it('runs a plugin added to the pipeline for WebSocket and SSE subscriptions alike', async () => {
    const seen: string[] = [];
    const refuseHotel: Plugin<GraphQLContext> = {
      onSubscribe({ args, setResultAndStopExecution }) {
        seen.push((args.contextValue as GraphQLContext).transport);
        if (args.variableValues?.['hotelId'] === 'closed') {
          setResultAndStopExecution({ errors: [new GraphQLError('This hotel is closed', { extensions: { code: 'FORBIDDEN' } })] });
        }
      },
    };
    const gateway = await startGateway(await backendEnv(backend), { plugins: [refuseHotel] });
    const token = await tokenFor('pat');

    const socket = connectWs(gateway.wsUrl, token);
    const open = record(socket.client, PRICE_UPDATED, { hotelId: 'h1' });
    const closed = record(socket.client, PRICE_UPDATED, { hotelId: 'closed' });
    const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    onTestFinished(() => sse.dispose());
    const overSse: Array<{ data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }> = [];
    let sseClosedDone = false;
    sse.subscribe({ query: PRICE_UPDATED, variables: { hotelId: 'h1' } }, { next: (value) => void overSse.push(value as never), error: () => undefined, complete: () => undefined });
    const sseClosed: typeof overSse = [];
    sse.subscribe({ query: PRICE_UPDATED, variables: { hotelId: 'closed' } }, { next: (value) => void sseClosed.push(value as never), error: () => undefined, complete: () => (sseClosedDone = true) });

    await closed.waitForEnd();
    expect(closed.results[0]?.errors?.map((error) => [error.message, error.extensions?.['code']])).toEqual([['This hotel is closed', 'FORBIDDEN']]);
    await waitUntil(() => sseClosedDone, 'the refused SSE subscription to end');
    expect(sseClosed[0]?.errors?.map((error) => [error.message, error.extensions?.['code']])).toEqual([['This hotel is closed', 'FORBIDDEN']]);

    await gateway.waitForSubscribers(topics.hotelPrices('h1'), 2);
    expect(gateway.app.webSockets.sharedJoinedCount()).toBe(2);
    await gateway.publish(PUBLISH_PRICE, priceInput('h1', 12_300));
    await open.waitForResults(1);
    await waitUntil(() => overSse.length === 1, 'the SSE result');
    expect(overSse[0]).toEqual(open.results[0]);
    expect(seen.sort()).toEqual(['sse', 'sse', 'websocket', 'websocket']);

    const subscribePhase = await gateway.app.metrics.registry.getSingleMetric('graphql_envelop_phase_subscribe')?.get();
    const counted = subscribePhase?.values.filter((value) => (value as { metricName?: string }).metricName === 'graphql_envelop_phase_subscribe_count');
    // Prometheus observes a subscribe when its result stream ends: the two refused ones, and the
    // WebSocket one, whose stream a shared delivery returns once it has joined (the SSE one's
    // stream is its response, open until it ends).
    expect(counted?.reduce((sum, value) => sum + value.value, 0)).toBe(3);
  });

  it("gives back the quota unit a plugin handed over when a WebSocket subscribe is refused after admission (variables that do not coerce, the resolver's authorization)", async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), MAX_SUBSCRIPTIONS_PER_USER: '2' });
    const socket = connectWs(gateway.wsUrl, await tokenFor('quinn'));
    // Admitted (a unit taken), then refused by the executor: its variable does not coerce.
    const byVariable = 'subscription($h: ID!) { priceUpdated(hotelId: $h) { hotelId } }';
    for (let attempt = 0; attempt < 3; attempt++) {
      const refused = record(socket.client, byVariable, { h: { not: 'an id' } });
      await refused.waitForEnd();
      expect(refused.results[0]?.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
      // Refused by the resolver's authorization after admission.
      const forbidden = record(socket.client, 'subscription { notificationCreated(userId: "someone-else") { id } }');
      await forbidden.waitForEnd();
      expect(forbidden.results[0]?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    }
    // Both units are still free.
    const first = record(socket.client, PRICE_UPDATED, { hotelId: 'h1' });
    const second = record(socket.client, PRICE_UPDATED, { hotelId: 'h2' });
    await gateway.waitForSubscribers(topics.hotelPrices('h1'));
    await gateway.waitForSubscribers(topics.hotelPrices('h2'));
    await gateway.publish(PUBLISH_PRICE, priceInput('h1', 100));
    await first.waitForResults(1);
    expect(second.results).toEqual([]);
    const third = record(socket.client, PRICE_UPDATED, { hotelId: 'h3' });
    await third.waitForEnd();
    expect(third.results[0]?.errors?.[0]?.extensions?.['code']).toBe('LIMIT_EXCEEDED');
  });
});
