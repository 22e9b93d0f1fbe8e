import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildApp } from '../src/app.js';
import { createMemoryDirectory } from '../src/directory/memory-directory.js';
import { topics } from '../src/events/topics.js';
import { testConfig, tokenFor } from './support/gateway.js';
import { ADD_MEMBERS, PRICE_UPDATED } from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';
import { sharedRedis } from './support/backends.js';
import { randomPrefix } from './support/redis-server.js';

async function startedApp(env: Record<string, string> = {}, overrides: Parameters<typeof buildApp>[1] = {}) {
  const app = buildApp(testConfig(env), overrides);
  const { port } = await app.start();
  // As a load balancer would: no client before /ready (with Redis, tokens cannot be checked
  // against revocations until it is connected, and are refused as `unavailable` until then).
  await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 'the gateway to be ready');
  return { app, httpUrl: `http://127.0.0.1:${port}/graphql`, wsUrl: `ws://127.0.0.1:${port}/graphql` };
}

describe('graceful shutdown', () => {
  it('tells WebSocket clients to reconnect (1001), completes SSE streams, and refuses new connections', async () => {
    const { app, httpUrl, wsUrl } = await startedApp();
    const token = await tokenFor('alice');
    const ws = connectWs(wsUrl, token);
    const prices = record(ws.client, PRICE_UPDATED, { hotelId: 'hotel-1' });
    const sse = await fetch(httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: PRICE_UPDATED, variables: { hotelId: 'hotel-1' } }),
    });
    await waitUntil(() => app.services.bus.subscriberCount(topics.hotelPrices('hotel-1')) === 2, 'two subscribers');

    await app.stop();
    expect((await ws.waitForClose()).code).toBe(1001);
    expect(prices.isComplete()).toBe(true);
    expect(app.services.bus.activeTopicCount()).toBe(0);
    expect(await sse.text()).toContain('event: complete');
    await expect(fetch(httpUrl.replace('/graphql', '/health'))).rejects.toThrow();
  });

  it('does not let a peer that ignores the close frame hold shutdown past its deadline', async () => {
    const { app, wsUrl } = await startedApp({ SHUTDOWN_TIMEOUT_MS: '1000' });
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    await once(socket, 'open');
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${await tokenFor('alice')}` } }));
    await once(socket, 'message');
    // Stop reading: the close frame is never answered.
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const stopping = app.stop();
    const outcome = await Promise.race([stopping.then(() => 'stopped'), sleep(8_000).then(() => 'still running')]);
    expect(outcome).toBe('stopped');
    socket.terminate();
  });

  it('lets an in-flight mutation finish and answer', async () => {
    const directory = createMemoryDirectory();
    let recorded = false;
    let markStarted: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (markStarted = resolve));
    const slowDirectory = {
      ...directory,
      conversations: {
        ...directory.conversations,
        addMembers: async (conversationId: string, userIds: readonly string[]) => {
          markStarted();
          await sleep(400);
          await directory.conversations.addMembers(conversationId, userIds);
          recorded = true;
        },
      },
    };
    const { app, httpUrl } = await startedApp({}, { directory: slowDirectory });
    const response = fetch(httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokenFor('messages', ['service'])}` },
      body: JSON.stringify({ query: ADD_MEMBERS, variables: { conversationId: 'c', userIds: ['alice'] } }),
    });
    await started; // the mutation is executing
    await app.stop();
    const answer = await response;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ data: { addConversationMembers: true } });
    expect(recorded).toBe(true);
  });
});

describe('graceful shutdown with Redis', () => {
  it('finishes within its deadline while Redis is down', async () => {
    const redis = await sharedRedis();
    const { app, wsUrl } = await startedApp({ REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), SHUTDOWN_TIMEOUT_MS: '1500' });
    const { client } = connectWs(wsUrl, await tokenFor('alice'));
    record(client, PRICE_UPDATED, { hotelId: 'hotel-1' });
    await waitUntil(() => app.services.bus.subscriberCount(topics.hotelPrices('hotel-1')) === 1, 'subscriber');
    await redis.kill();
    await waitUntil(() => !app.services.bus.isReady(), 'Redis to be noticed down');
    // A subscription made during the outage leaves a SUBSCRIBE queued forever.
    record(client, PRICE_UPDATED, { hotelId: 'hotel-2' });
    await waitUntil(() => app.services.bus.subscriberCount(topics.hotelPrices('hotel-2')) === 1, 'second subscriber');
    const outcome = await Promise.race([app.stop().then(() => 'stopped'), sleep(8_000).then(() => 'still running')]);
    expect(outcome).toBe('stopped');
    await redis.restart();
    // Killing and restarting a redis-server takes seconds on a loaded machine; the deadline under
    // test is the 8 s race above.
  }, 20_000);

  it('lets a mutation in flight over WebSocket finish its Redis work before closing Redis', async () => {
    const redis = await sharedRedis();
    const prefix = randomPrefix();
    const { app, wsUrl } = await startedApp({ REDIS_URL: redis.url, REDIS_PREFIX: prefix });
    const inspector = redis.client();
    const announcements: string[] = [];
    const listener = redis.client();
    await listener.subscribe(`${prefix}membership`);
    listener.on('message', (_channel: string, message: string) => announcements.push(message));
    await inspector.sadd(`${prefix}conversation:c1:members`, 'alice', 'bob');

    const service = connectWs(wsUrl, await tokenFor('messages', ['service']));
    const removal = record(service.client, 'mutation { removeConversationMembers(conversationId: "c1", userIds: ["bob"]) }');
    // Connecting reads Redis too (revocations, quota): be connected before Redis is held.
    await service.waitForConnected();
    // Hold Redis for a moment so the mutation is still running when shutdown starts.
    void inspector.call('DEBUG', 'SLEEP', '0.3');
    await sleep(50);
    await app.stop();
    await waitUntil(() => announcements.length === 1, 'the membership announcement');
    expect(JSON.parse(announcements[0] as string)).toEqual({ conversationId: 'c1', removed: ['bob'] });
    expect(await inspector.sismember(`${prefix}conversation:c1:members`, 'bob')).toBe(0);
    void removal;
  });
});
