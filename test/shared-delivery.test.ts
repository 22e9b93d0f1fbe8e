import { GraphQLInt, GraphQLObjectType, GraphQLSchema, GraphQLString, parse } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ANONYMOUS, type Principal } from '../src/auth/principal.js';
import { createMemoryEventBus } from '../src/bus/memory-event-bus.js';
import { buildEvent, type TidingsEvent } from '../src/events/contracts.js';
import { topics } from '../src/events/topics.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { createSharedDeliveries } from '../src/transport/shared-delivery.js';
import { createEventExecution } from '../src/server/event-execution.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { counterValue } from './support/metrics.js';
import { ADD_MEMBERS, NEW_MESSAGE, PRICE_UPDATED, PRICE_UPDATED_ADMIN_FIELDS, priceInput, PUBLISH_MESSAGE, PUBLISH_PRICE, REMOVE_MEMBERS } from './support/operations.js';
import { openRawSocket } from './support/raw-socket.js';
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

describe('shared deliveries (unit)', () => {
  const price = (amountMinor: number) => {
    const built = buildEvent('priceUpdated', { hotelId: 'h1', roomType: 'DOUBLE', price: { amountMinor, currency: 'EUR' } });
    if (!built.ok) throw new Error(built.issues.join('; '));
    return built.event as TidingsEvent;
  };
  /** A schema whose `amount` resolves late for odd amounts, so executions finish out of order. */
  const PriceType = new GraphQLObjectType({
    name: 'Price',
    fields: {
      amount: {
        type: GraphQLInt,
        resolve: async (event: TidingsEvent & { type: 'priceUpdated' }) => {
          const amount = event.data.price.amountMinor;
          if (amount % 2 === 1) await new Promise((resolve) => setTimeout(resolve, 30));
          return amount;
        },
      },
    },
  });
  const schema = new GraphQLSchema({
    query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLInt } } }),
    subscription: new GraphQLObjectType({ name: 'Subscription', fields: { priceUpdated: { type: PriceType, resolve: (event: unknown) => event } } }),
  });

  const setUp = () => {
    const bus = createMemoryEventBus();
    const deliveries = createSharedDeliveries({ bus, metrics: createMetrics(), logger: pino({ level: 'silent' }), maskError: (error) => error, shareable: new Set(['priceUpdated']), execution: createEventExecution({ compileAfter: 0, logger: pino({ level: 'silent' }) }) });
    const join = (id: string, document: ReturnType<typeof parse> | undefined, frames: string[]) => {
      let ended = 0;
      const member = {
        key: 'k',
        idJson: JSON.stringify(id),
        args: { schema, document: document as ReturnType<typeof parse>, contextValue: { principal: ANONYMOUS }, variableValues: {} },
        field: 'priceUpdated',
        sink: { next: (idJson: string, payloadJson: string) => void frames.push(`{\"id\":${idJson},\"type\":\"next\",\"payload\":${payloadJson}}`) },
      };
      const stream = deliveries.join({ topic: topics.hotelPrices('h1') }, member, { ended: { release: () => ended++ } });
      return { leave: () => stream.stop(), ended: () => ended };
    };
    return { bus, deliveries, join };
  };

  it('delivers in publish order to every member when executions are asynchronous', async () => {
    const { bus, deliveries, join } = setUp();
    const first: string[] = [];
    const second: string[] = [];
    join('a', parse('subscription { priceUpdated { amount } }'), first);
    join('b', parse('subscription { priceUpdated { amount } }'), second);
    expect(deliveries.groupCount()).toBe(1);
    for (const amount of [1, 2, 3, 4, 5]) await bus.publish(price(amount));
    await waitUntil(() => first.length === 5 && second.length === 5, 'five frames each');
    const amounts = (frames: string[]) => frames.map((frame) => (JSON.parse(frame) as { payload: { data: { priceUpdated: { amount: number } } } }).payload.data.priceUpdated.amount);
    expect(amounts(first)).toEqual([1, 2, 3, 4, 5]);
    expect(amounts(second)).toEqual([1, 2, 3, 4, 5]);
    expect(first.every((frame) => frame.startsWith('{"id":"a","type":"next","payload":'))).toBe(true);
  });

  it('ends every member of a group whose execution fails, and the group with them', async () => {
    const { bus, deliveries, join } = setUp();
    const frames: string[] = [];
    // No document: graphql's execute throws before executing anything.
    const a = join('a', undefined, frames);
    const b = join('b', undefined, frames);
    await bus.publish(price(2));
    await waitUntil(() => a.ended() === 1 && b.ended() === 1, 'both members ended');
    expect(frames).toEqual([]);
    expect(deliveries.groupCount()).toBe(0);
    expect(bus.activeTopicCount()).toBe(0);
  });
});

describe('shared deliveries on a closed bus (unit)', () => {
  it('end a member at once instead of joining a group that cannot deliver', async () => {
    const bus = createMemoryEventBus();
    await bus.close();
    const deliveries = createSharedDeliveries({ bus, metrics: createMetrics(), logger: pino({ level: 'silent' }), maskError: (error) => error, shareable: new Set(['priceUpdated']), execution: createEventExecution({ compileAfter: 0, logger: pino({ level: 'silent' }) }) });
    let ended = 0;
    const member = {
      key: 'k',
      idJson: '"a"',
      args: { schema: new GraphQLSchema({ query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLInt } } }) }), document: parse('{ ok }'), contextValue: { principal: ANONYMOUS } },
      field: 'priceUpdated',
      sink: { next: () => undefined },
    };
    const joined = deliveries.join({ topic: topics.hotelPrices('h1') }, member, { ended: { release: () => ended++ } });
    expect(ended).toBe(1);
    // Ended already: stopping it gives nothing back twice.
    joined.stop();
    expect(ended).toBe(1);
    expect(deliveries.groupCount()).toBe(0);
  });
});

describe.each(BACKENDS)('shared-delivery subscribers, admitted by the one pipeline (%s)', (backend) => {
  const subscribeAs = async (gateway: Awaited<ReturnType<typeof startGateway>>, who: string, hotelId: string, count: number) => {
    const connection = connectWs(gateway.wsUrl, await tokenFor(who, ['user']));
    return { connection, recordings: Array.from({ length: count }, () => record(connection.client, PRICE_UPDATED, { hotelId })) };
  };
  const codeOf = (recording: Recording) => recording.results[0]?.errors?.[0]?.extensions?.['code'];

  it('are quota-limited, counted and given back like any subscriber, and keep receiving when the first one leaves', async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), MAX_SUBSCRIPTIONS_PER_USER: '2' });
    const hotelId = 'joined-hotel';
    const topic = topics.hotelPrices(hotelId);
    // The first subscriber starts the group: its topic is named by the field's own resolver.
    const first = await subscribeAs(gateway, 'first', hotelId, 1);
    await gateway.waitForSubscribers(topic, 1);
    await waitUntil(() => gateway.app.webSockets.sharedGroupCount() === 1, 'the group to run');
    expect(gateway.app.webSockets.sharedJoinedCount()).toBe(1);

    // The same operation, variables and roles: these join the running group.
    const joiner = await subscribeAs(gateway, 'joiner', hotelId, 2);
    await gateway.waitForSubscribers(topic, 3);
    const over = record(joiner.connection.client, PRICE_UPDATED, { hotelId });
    await over.waitForEnd();
    expect(codeOf(over)).toBe('LIMIT_EXCEEDED');
    // None of them runs a pipeline of its own.
    expect(gateway.app.webSockets.sharedJoinedCount()).toBe(3);
    const stats = (await (await fetch(`${gateway.opsUrl}/stats`)).json()) as { subscriptions: Record<string, number> };
    expect(stats.subscriptions['priceUpdated']).toBe(3);

    await gateway.publish(PUBLISH_PRICE, priceInput(hotelId, 10_000));
    for (const recording of [...first.recordings, ...joiner.recordings]) {
      expect((await recording.waitForResults(1))[0]?.data?.['priceUpdated']).toMatchObject({ hotelId, price: { amountMinor: 10_000 } });
    }

    // Completing one gives its quota unit back; the first subscriber leaving keeps the group going.
    joiner.recordings[0]?.unsubscribe();
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topic) === 2, 'one joiner gone');
    const again = record(joiner.connection.client, PRICE_UPDATED, { hotelId });
    await gateway.waitForSubscribers(topic, 3);
    first.connection.client.terminate();
    await waitUntil(() => gateway.app.services.bus.subscriberCount(topic) === 2, 'the first subscriber gone');
    await gateway.publish(PUBLISH_PRICE, priceInput(hotelId, 20_000));
    expect((await again.waitForResults(1))[0]?.data?.['priceUpdated']).toMatchObject({ price: { amountMinor: 20_000 } });
    expect((await joiner.recordings[1]!.waitForResults(2))[1]?.data?.['priceUpdated']).toMatchObject({ price: { amountMinor: 20_000 } });
    expect(gateway.app.webSockets.sharedGroupCount()).toBe(1);

    // Shutdown completes them like every other subscription.
    await gateway.app.stop();
    expect((await joiner.connection.waitForClose()).code).toBe(1001);
  });

  // They join without graphql-ws' own subscribe handling, so its protocol rules are kept here.
  it('follow the protocol: a complete before they start leaves nothing, ids are reused after a complete, a duplicate id closes with 4409', async () => {
    const gateway = await startGateway(await backendEnv(backend));
    const hotelId = 'protocol-hotel';
    const topic = topics.hotelPrices(hotelId);
    const raw = await openRawSocket(gateway.wsUrl);
    await raw.init(await tokenFor('protocol', ['user']));
    const subscribe = (id: string) => raw.send({ id, type: 'subscribe', payload: { query: PRICE_UPDATED, variables: { hotelId } } });
    const about = (id: string, type?: string) => raw.messages.filter((message) => message['id'] === id && (type === undefined || message['type'] === type));
    const subscribedStats = async () => ((await (await fetch(`${gateway.opsUrl}/stats`)).json()) as { subscriptions: Record<string, number> }).subscriptions['priceUpdated'] ?? 0;

    // Completed in the same breath as its subscribe: never started, never answered.
    subscribe('a');
    raw.send({ id: 'a', type: 'complete' });
    subscribe('b');
    await gateway.waitForSubscribers(topic, 1);
    await gateway.publish(PUBLISH_PRICE, priceInput(hotelId, 100));
    await raw.waitForMessage((message) => message['id'] === 'b' && message['type'] === 'next');
    expect(about('a')).toEqual([]);
    expect(gateway.app.webSockets.sharedJoinedCount()).toBe(1);
    expect(await subscribedStats()).toBe(1);

    // Completed by the client: no complete back, its unit and presence given back; the id can be used again.
    raw.send({ id: 'b', type: 'complete' });
    await waitUntil(() => gateway.app.webSockets.sharedJoinedCount() === 0, 'the member to leave');
    expect(await subscribedStats()).toBe(0);
    subscribe('b');
    await waitUntil(() => gateway.app.webSockets.sharedJoinedCount() === 1, 'the id to serve again');
    await gateway.publish(PUBLISH_PRICE, priceInput(hotelId, 200));
    await waitUntil(() => about('b', 'next').length === 2, 'the second event on the reused id');
    expect(about('b', 'complete')).toEqual([]);
    expect(about('b', 'error')).toEqual([]);

    subscribe('b');
    expect((await raw.waitForClose()).code).toBe(4409);
    await waitUntil(() => gateway.app.webSockets.sharedJoinedCount() === 0, 'the closed socket to leave its group');
    expect(gateway.app.webSockets.sharedGroupCount()).toBe(0);
  });

  it('are rate-limited like any subscriber', async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), RATE_LIMIT_OPERATIONS: '2' });
    const hotelId = 'limited-hotel';
    await subscribeAs(gateway, 'starter', hotelId, 1);
    await gateway.waitForSubscribers(topics.hotelPrices(hotelId), 1);
    const flooder = await subscribeAs(gateway, 'flooder', hotelId, 3);
    await waitUntil(() => flooder.recordings.some((recording) => recording.isComplete()), 'one subscribe to be refused');
    await gateway.waitForSubscribers(topics.hotelPrices(hotelId), 3);
    expect(flooder.recordings.filter((recording) => recording.isComplete()).map(codeOf)).toEqual(['RATE_LIMITED']);
    expect(gateway.app.webSockets.sharedJoinedCount()).toBe(3);
  });
});

describe('shared deliveries group by what the execution reads', () => {
  const price = (amountMinor: number) => {
    const built = buildEvent('priceUpdated', { hotelId: 'h1', roomType: 'DOUBLE', price: { amountMinor, currency: 'EUR' } });
    if (!built.ok) throw new Error(built.issues.join('; '));
    return built.event as TidingsEvent;
  };
  const user = (userId: string): Principal => ({ kind: 'user', userId, roles: new Set(['user']), expiresAt: undefined, issuedAt: undefined });
  /** A shareable-looking field with a per-user rule added: `viewer` reads who the subscriber is. */
  const schemaWithPerUserRule = (asynchronous: boolean) => {
    const PriceType = new GraphQLObjectType({
      name: 'Price',
      fields: {
        amount: { type: GraphQLInt, resolve: (event: unknown) => (event as TidingsEvent & { type: 'priceUpdated' }).data.price.amountMinor },
        viewer: {
          type: GraphQLString,
          resolve: (_event: unknown, _args: unknown, context: { principal: Principal }) => {
            const viewer = context.principal.kind === 'user' ? context.principal.userId : null;
            return asynchronous ? new Promise((resolve) => setTimeout(() => resolve(viewer), 20)) : viewer;
          },
        },
      },
    });
    return new GraphQLSchema({
      query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLInt } } }),
      subscription: new GraphQLObjectType({ name: 'Subscription', fields: { priceUpdated: { type: PriceType, resolve: (event: unknown) => event } } }),
    });
  };

  for (const asynchronous of [false, true]) {
    it(`splits a group per user once an execution reads the subscriber's identity (${asynchronous ? 'asynchronous' : 'synchronous'} resolvers)`, async () => {
      const bus = createMemoryEventBus();
      const deliveries = createSharedDeliveries({ bus, metrics: createMetrics(), logger: pino({ level: 'silent' }), maskError: (error) => error, shareable: new Set(['priceUpdated']), execution: createEventExecution({ compileAfter: 0, logger: pino({ level: 'silent' }) }) });
      const schema = schemaWithPerUserRule(asynchronous);
      const document = parse('subscription { priceUpdated { amount viewer } }');
      const received = new Map<string, string[]>();
      const join = (id: string, principal: Principal) => {
        received.set(id, []);
        deliveries.join(
          { topic: topics.hotelPrices('h1') },
          {
            key: 'same-document-variables-roles',
            idJson: JSON.stringify(id),
            args: { schema, document, contextValue: { principal }, variableValues: {} },
            field: 'priceUpdated',
            sink: { next: (idJson: string, payloadJson: string) => void received.get(id)!.push(`{\"id\":${idJson},\"type\":\"next\",\"payload\":${payloadJson}}`) },
          },
          {},
        );
      };
      const viewersOf = (id: string) => received.get(id)!.map((frame) => (JSON.parse(frame) as { payload: { data: { priceUpdated: { viewer: string; amount: number } } } }).payload.data.priceUpdated);
      join('alice-1', user('alice'));
      join('bob-1', user('bob'));
      join('alice-2', user('alice'));
      expect(deliveries.groupCount()).toBe(1);

      // Two events back to back: with asynchronous resolvers the second waits behind the first.
      await bus.publish(price(1));
      await bus.publish(price(2));
      await waitUntil(() => [...received.values()].every((frames) => frames.length === 2), 'two results for everyone').catch((error: unknown) => {
        throw new Error(`${String(error)}: ${JSON.stringify([...received])}`);
      });
      expect(viewersOf('alice-1')).toEqual([{ amount: 1, viewer: 'alice' }, { amount: 2, viewer: 'alice' }]);
      expect(viewersOf('alice-2')).toEqual([{ amount: 1, viewer: 'alice' }, { amount: 2, viewer: 'alice' }]);
      expect(viewersOf('bob-1')).toEqual([{ amount: 1, viewer: 'bob' }, { amount: 2, viewer: 'bob' }]);
      expect(deliveries.groupCount()).toBe(2);

      // A newcomer with the same document, variables and roles gets a group of its own user.
      join('carol-1', user('carol'));
      join('bob-2', user('bob'));
      expect(deliveries.groupCount()).toBe(3);
      await bus.publish(price(3));
      await waitUntil(() => received.get('carol-1')!.length === 1 && received.get('bob-2')!.length === 1, 'the newcomers’ results');
      expect(viewersOf('carol-1')).toEqual([{ amount: 3, viewer: 'carol' }]);
      expect(viewersOf('bob-2')).toEqual([{ amount: 3, viewer: 'bob' }]);
      await waitUntil(() => received.get('bob-1')!.length === 3, "bob's third result");
      expect(received.get('alice-1')).toHaveLength(3);
    });
  }

  it('does not revive a group whose last member left while an execution that reads identity was running', async () => {
    const bus = createMemoryEventBus();
    const deliveries = createSharedDeliveries({ bus, metrics: createMetrics(), logger: pino({ level: 'silent' }), maskError: (error) => error, shareable: new Set(['priceUpdated']), execution: createEventExecution({ compileAfter: 0, logger: pino({ level: 'silent' }) }) });
    const schema = schemaWithPerUserRule(true);
    const document = parse('subscription { priceUpdated { amount viewer } }');
    const join = (id: string, frames: string[]) =>
      deliveries.join(
        { topic: topics.hotelPrices('h1') },
        {
          key: 'k',
          idJson: JSON.stringify(id),
          args: { schema, document, contextValue: { principal: user('alice') }, variableValues: {} },
          field: 'priceUpdated',
          sink: { next: (_idJson: string, payloadJson: string) => void frames.push(payloadJson) },
        },
        {},
      );
    const first = join('a-1', []);
    await bus.publish(price(1));
    // The execution (20 ms, reading the user) is running when its only member leaves.
    first.stop();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(deliveries.groupCount()).toBe(0);
    // A newcomer of the same user and key gets a live group, and its events.
    const frames: string[] = [];
    join('a-2', frames);
    expect(deliveries.groupCount()).toBe(1);
    await bus.publish(price(2));
    await waitUntil(() => frames.length === 1, 'the newcomer’s result');
    expect(JSON.parse(frames[0]!)).toEqual({ data: { priceUpdated: { amount: 2, viewer: 'alice' } } });
  });

  it('keeps one group for a rule that reads only roles', async () => {
    const bus = createMemoryEventBus();
    const deliveries = createSharedDeliveries({ bus, metrics: createMetrics(), logger: pino({ level: 'silent' }), maskError: (error) => error, shareable: new Set(['priceUpdated']), execution: createEventExecution({ compileAfter: 0, logger: pino({ level: 'silent' }) }) });
    const PriceType = new GraphQLObjectType({
      name: 'Price',
      fields: { isAdmin: { type: GraphQLString, resolve: (_e: unknown, _a: unknown, context: { principal: Principal }) => String(context.principal.kind === 'user' && context.principal.roles.has('admin')) } },
    });
    const schema = new GraphQLSchema({
      query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLInt } } }),
      subscription: new GraphQLObjectType({ name: 'Subscription', fields: { priceUpdated: { type: PriceType, resolve: (event: unknown) => event } } }),
    });
    const frames: string[] = [];
    for (const who of ['alice', 'bob']) {
      deliveries.join(
        { topic: topics.hotelPrices('h1') },
        { key: 'k', idJson: JSON.stringify(who), args: { schema, document: parse('subscription { priceUpdated { isAdmin } }'), contextValue: { principal: user(who) } }, field: 'priceUpdated', sink: { next: (idJson: string, payloadJson: string) => void frames.push(`{\"id\":${idJson},\"type\":\"next\",\"payload\":${payloadJson}}`) } },
        {},
      );
    }
    await bus.publish(price(1));
    expect(frames).toHaveLength(2);
    expect(deliveries.groupCount()).toBe(1);
  });
});

describe.each(BACKENDS)('conversations on the shared path (%s)', (backend) => {
  it("shares one execution among a conversation's members, ends a removed member's subscriptions with FORBIDDEN, and keeps the others'", async () => {
    const gateway = await startGateway(await backendEnv(backend));
    await gateway.publish(ADD_MEMBERS, { conversationId: 'c1', userIds: ['alice', 'bob'] });
    const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const aliceTab = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const bob = connectWs(gateway.wsUrl, await tokenFor('bob'));
    const alices = [record(alice.client, NEW_MESSAGE, { conversationId: 'c1' }), record(aliceTab.client, NEW_MESSAGE, { conversationId: 'c1' })];
    const bobs = record(bob.client, NEW_MESSAGE, { conversationId: 'c1' });
    await gateway.waitForSubscribers(topics.conversationMessages('c1'), 3);
    // One group for the conversation: the result does not depend on who reads it; each member's
    // membership is checked and watched on its own.
    expect(gateway.app.webSockets.sharedGroupCount()).toBe(1);
    const message = (messageId: string) => ({ input: { messageId, conversationId: 'c1', senderId: 'bob', text: messageId } });
    await gateway.publish(PUBLISH_MESSAGE, message('m1'));
    for (const recording of [...alices, bobs]) await recording.waitForResults(1);

    await gateway.publish(REMOVE_MEMBERS, { conversationId: 'c1', userIds: ['alice'] });
    for (const recording of alices) {
      await recording.waitForEnd();
      expect(recording.results.map((result) => result.errors?.[0]?.extensions?.['code'] ?? 'data')).toEqual(['data', 'FORBIDDEN']);
    }
    await gateway.publish(PUBLISH_MESSAGE, message('m2'));
    await bobs.waitForResults(2);
    expect(alices.map((recording) => recording.results.length)).toEqual([2, 2]);
    expect(gateway.app.webSockets.sharedGroupCount()).toBe(1);
    // Subscribing again after the removal is refused at subscribe time.
    const again = record(alice.client, NEW_MESSAGE, { conversationId: 'c1' });
    await again.waitForEnd();
    expect(JSON.stringify(again.results[0]?.errors ?? again.failure.value)).toContain('FORBIDDEN');
  });
});
