import { createClient as createSseClient } from 'graphql-sse';
import { GraphQLError } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { describe, expect, it } from 'vitest';
import type { GraphQLContext } from '../src/schema/context.js';
import { topics } from '../src/events/topics.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { ADD_MEMBERS, NEW_MESSAGE, REGISTER_BOOKING, REMOVE_MEMBERS, USER_TYPING } from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record, type Recording } from './support/ws-client.js';

/**
 * Presence end to end: a member is present in a conversation while a connection of theirs holds a
 * newMessage, userTyping or presence subscription to it, on any instance; changes are coalesced,
 * and a quick reconnect within the grace period is none. Online state follows open connections.
 */
const PRESENCE = 'subscription P($c: ID!) { presence(conversationId: $c) { conversationId kind present changes { userId change at } at } }';
const USER_PRESENCE_QUERY = 'query U($ids: [ID!]!, $c: ID, $b: ID) { userPresence(userIds: $ids, conversationId: $c, bookingId: $b) { userId online at } }';
const USER_PRESENCE = 'subscription U($ids: [ID!]!, $c: ID, $b: ID) { userPresence(userIds: $ids, conversationId: $c, bookingId: $b) { userId online at } }';

interface PresenceUpdate {
  presence: { conversationId: string; kind: 'SNAPSHOT' | 'CHANGES'; present: string[] | null; changes: Array<{ userId: string; change: 'JOINED' | 'LEFT'; at: string }>; at: string };
}

const OWN_NOTIFICATIONS = 'subscription { notificationCreated { id } }';

const GRACE_MS = 300;
const env = (extra: Record<string, string>) => ({ PRESENCE_GRACE_MS: String(GRACE_MS), PRESENCE_COALESCE_MS: '100', ...extra });

/** Every change delivered so far, flattened, as `user:CHANGE`. */
const changesOf = (recording: Recording<PresenceUpdate>) =>
  recording.results.flatMap((result) => result.data?.presence.changes.map((change) => `${change.userId}:${change.change}`) ?? []);

async function members(gateway: TestGateway, conversationId: string, userIds: string[]) {
  await gateway.publish(ADD_MEMBERS, { conversationId, userIds });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(BACKENDS)('presence (%s)', (backend) => {
  it('shows a member joining from another instance, one presence for two tabs, LEFT only when the last tab closes (after the grace period)', async () => {
    const shared = await backendEnv(backend);
    const a = await startGateway(env(shared));
    // Memory: one instance plays both parts.
    const b = backend === 'redis' ? await startGateway(env(shared)) : a;
    await members(a, 'c1', ['alice', 'bob']);

    const alice = connectWs(a.wsUrl, await tokenFor('alice'));
    const watching = record<PresenceUpdate>(alice.client, PRESENCE, { c: 'c1' });
    await watching.waitForResults(1);
    expect(watching.results[0]?.data?.presence).toMatchObject({ conversationId: 'c1', kind: 'SNAPSHOT', present: ['alice'], changes: [] });

    const bobTab1 = connectWs(b.wsUrl, await tokenFor('bob'));
    record(bobTab1.client, NEW_MESSAGE, { conversationId: 'c1' });
    await waitUntil(() => changesOf(watching).length === 1, 'bob JOINED');
    expect(changesOf(watching)).toEqual(['bob:JOINED']);
    expect(watching.results[1]?.data?.presence).toMatchObject({ kind: 'CHANGES', present: null });

    // A second tab (on the other instance) is no second JOINED; closing one of two is no LEFT.
    const bobTab2 = connectWs(a.wsUrl, await tokenFor('bob'));
    const typing = record(bobTab2.client, USER_TYPING, { conversationId: 'c1' });
    await a.waitForSubscribers(topics.conversationTyping('c1'));
    await bobTab1.client.dispose();
    await pause(GRACE_MS + 500);
    expect(changesOf(watching)).toEqual(['bob:JOINED']);

    // A quick reconnect within the grace period: no LEFT, no JOINED. (The new tab's socket is
    // open first, so its subscribe follows the unsubscribe within milliseconds, even under load.)
    const bobTab3 = connectWs(b.wsUrl, await tokenFor('bob'));
    record(bobTab3.client, OWN_NOTIFICATIONS);
    await bobTab3.waitForConnected();
    typing.unsubscribe();
    record(bobTab3.client, NEW_MESSAGE, { conversationId: 'c1' });
    await b.waitForSubscribers(topics.conversationMessages('c1'));
    await pause(GRACE_MS + 500);
    expect(changesOf(watching)).toEqual(['bob:JOINED']);

    // The last one closes: LEFT, once the grace period is over.
    await bobTab3.client.dispose();
    await waitUntil(() => changesOf(watching).length === 2, 'bob LEFT');
    expect(changesOf(watching)).toEqual(['bob:JOINED', 'bob:LEFT']);
    // A snapshot taken now shows alice alone again.
    const late = record<PresenceUpdate>(connectWs(b.wsUrl, await tokenFor('alice')).client, PRESENCE, { c: 'c1' });
    await late.waitForResults(1);
    expect(late.results[0]?.data?.presence.present).toEqual(['alice']);
  }, 20_000);

  it('refuses non-members, ends a removed member’s presence subscription with FORBIDDEN, and coalesces a burst of joins into a few frames', async () => {
    const shared = await backendEnv(backend);
    const a = await startGateway(env(shared));
    const b = backend === 'redis' ? await startGateway(env(shared)) : a;
    const crowd = Array.from({ length: 40 }, (_, index) => `member-${index}`);
    await members(a, 'c2', ['alice', 'mallory-was-here', ...crowd]);

    const outsider = record<PresenceUpdate>(connectWs(a.wsUrl, await tokenFor('mallory')).client, PRESENCE, { c: 'c2' });
    await outsider.waitForEnd();
    expect(outsider.results[0]?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');

    const alice = connectWs(a.wsUrl, await tokenFor('alice'));
    const watching = record<PresenceUpdate>(alice.client, PRESENCE, { c: 'c2' });
    await watching.waitForResults(1);
    // Forty members, connected already, subscribe at once on the other instance.
    const sockets = await Promise.all(crowd.map(async (member) => connectWs(b.wsUrl, await tokenFor(member))));
    for (const socket of sockets) record(socket.client, OWN_NOTIFICATIONS);
    await Promise.all(sockets.map((socket) => socket.waitForConnected()));
    for (const socket of sockets) record(socket.client, NEW_MESSAGE, { conversationId: 'c2' });
    await waitUntil(() => changesOf(watching).length === crowd.length, 'forty JOINED');
    expect(new Set(changesOf(watching))).toEqual(new Set(crowd.map((member) => `${member}:JOINED`)));
    // Coalesced: far fewer frames than joins (one per 100 ms interval while they arrive).
    expect(watching.results.length - 1).toBeLessThan(crowd.length / 2);

    await a.publish(REMOVE_MEMBERS, { conversationId: 'c2', userIds: ['alice'] });
    await watching.waitForEnd();
    expect(watching.results.at(-1)?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  }, 30_000);

  it('skips a change older than one already seen for the user (announcements of two instances out of order)', async () => {
    const gateway = await startGateway(env(await backendEnv(backend)));
    await members(gateway, 'c6', ['alice', 'bob']);
    const alice = connectWs(gateway.wsUrl, await tokenFor('alice'));
    const watching = record<PresenceUpdate>(alice.client, PRESENCE, { c: 'c6' });
    const online = record<{ userPresence: { userId: string; online: boolean } }>(alice.client, USER_PRESENCE, { ids: ['bob'], c: 'c6' });
    await watching.waitForResults(1);
    await online.waitForResults(1);
    const announce = (scope: 'conversation' | 'user', scopeId: string, change: 'JOINED' | 'LEFT', at: string) =>
      gateway.app.services.publisher.publish('presenceChanged', { scope, scopeId, changes: [{ userId: 'bob', change, at }] }, { source: 'presence' });
    // bob moved from one instance to another: the JOINED (later) arrives before the LEFT (earlier).
    await announce('conversation', 'c6', 'JOINED', '2026-12-08T10:00:02.000Z');
    await announce('user', 'bob', 'JOINED', '2026-12-08T10:00:02.000Z');
    await announce('conversation', 'c6', 'LEFT', '2026-12-08T10:00:01.000Z');
    await announce('user', 'bob', 'LEFT', '2026-12-08T10:00:01.000Z');
    // A later LEFT does apply.
    await announce('conversation', 'c6', 'LEFT', '2026-12-08T10:00:03.000Z');
    await announce('user', 'bob', 'LEFT', '2026-12-08T10:00:03.000Z');
    await waitUntil(() => changesOf(watching).length === 2 && online.results.length === 3, 'the changes');
    expect(changesOf(watching)).toEqual(['bob:JOINED', 'bob:LEFT']);
    expect(watching.results[2]?.data?.presence.changes[0]?.at).toBe('2026-12-08T10:00:03.000Z');
    expect(online.results.map((result) => result.data?.userPresence.online)).toEqual([false, true, false]);
  });

  it('ends a presence stream that fails with its coded error on WebSocket and SSE alike, never as an internal error', async () => {
    // A plugin makes every presence stream fail as one whose snapshot cannot be read does (Redis away).
    const failing: Plugin<GraphQLContext> = {
      onSubscribe: () => ({
        onSubscribeResult: ({ result, setResult }) => {
          if (!isAsyncIterable(result)) return;
          void (result as AsyncIterableIterator<unknown>).return?.();
          setResult(
            (async function* () {
              yield* [];
              throw new GraphQLError('Presence could not be read; subscribe again shortly', { extensions: { code: 'SERVICE_UNAVAILABLE' } });
            })() as never,
          );
        },
      }),
    };
    const gateway = await startGateway(env(await backendEnv(backend)), { plugins: [failing] });
    await members(gateway, 'c7', ['alice']);
    const ws = record<PresenceUpdate>(connectWs(gateway.wsUrl, await tokenFor('alice')).client, PRESENCE, { c: 'c7' });
    await ws.waitForEnd();
    expect([ws.failure.value, ws.results.map((result) => result.errors?.[0]?.extensions?.['code'])]).toEqual([undefined, ['SERVICE_UNAVAILABLE']]);
    const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${await tokenFor('alice')}` }, retryAttempts: 0 });
    const overSse: Array<{ errors?: Array<{ extensions?: Record<string, unknown> }> }> = [];
    let sseEnded = false;
    sse.subscribe({ query: PRESENCE, variables: { c: 'c7' } }, { next: (value) => void overSse.push(value as never), error: () => (sseEnded = true), complete: () => (sseEnded = true) });
    await waitUntil(() => sseEnded, 'the SSE stream to end');
    sse.dispose();
    expect(overSse.map((result) => result.errors?.[0]?.extensions?.['code'])).toEqual(['SERVICE_UNAVAILABLE']);
  });

  it('counts a member subscribed over SSE as present, and lets go when the SSE stream ends', async () => {
    const gateway = await startGateway(env(await backendEnv(backend)));
    await members(gateway, 'c5', ['alice', 'bob']);
    const alice = record<PresenceUpdate>(connectWs(gateway.wsUrl, await tokenFor('alice')).client, PRESENCE, { c: 'c5' });
    await alice.waitForResults(1);
    const sse = createSseClient({ url: gateway.httpUrl, headers: { authorization: `Bearer ${await tokenFor('bob')}` }, retryAttempts: 0 });
    sse.subscribe({ query: NEW_MESSAGE, variables: { conversationId: 'c5' } }, { next: () => undefined, error: () => undefined, complete: () => undefined });
    await waitUntil(() => changesOf(alice).length === 1, 'bob JOINED over SSE');
    expect(changesOf(alice)).toEqual(['bob:JOINED']);
    sse.dispose();
    await waitUntil(() => changesOf(alice).length === 2, 'bob LEFT when the stream ended');
    expect(changesOf(alice)).toEqual(['bob:JOINED', 'bob:LEFT']);
    await waitUntil(() => (gateway.app.stats()['presence'] as { conversation: number }).conversation === 1, 'only alice held');
  }, 20_000);

  it('shows what it holds in /stats and counts the changes it announced in /metrics', async () => {
    const gateway = await startGateway(env(await backendEnv(backend)));
    await members(gateway, 'c4', ['alice', 'bob']);
    const alice = record<PresenceUpdate>(connectWs(gateway.wsUrl, await tokenFor('alice')).client, PRESENCE, { c: 'c4' });
    await alice.waitForResults(1);
    const bob = connectWs(gateway.wsUrl, await tokenFor('bob'));
    record(bob.client, NEW_MESSAGE, { conversationId: 'c4' });
    await waitUntil(() => changesOf(alice).length === 1, 'bob JOINED');
    const stats = (await (await fetch(`${gateway.opsUrl}/stats`)).json()) as { presence: unknown };
    expect(stats.presence).toEqual({ conversation: 2, user: 2, watchedScopes: 1 });
    await bob.client.dispose();
    await waitUntil(() => changesOf(alice).length === 2, 'bob LEFT');
    const metrics = await (await fetch(`${gateway.opsUrl}/metrics`)).text();
    // alice and bob joined the conversation and came online; bob left both.
    expect(metrics).toMatch(/tidings_presence_changes_total\{scope="conversation",change="JOINED"\} 2/);
    expect(metrics).toMatch(/tidings_presence_changes_total\{scope="conversation",change="LEFT"\} 1/);
    expect(metrics).toMatch(/tidings_presence_changes_total\{scope="user",change="LEFT"\} 1/);
    expect(metrics).toMatch(/tidings_presence_holds\{scope="conversation"\} 1/);
  }, 20_000);

  it('userPresence: the query and the subscription answer for the people the viewer has to do with, and refuse anyone else with FORBIDDEN', async () => {
    const shared = await backendEnv(backend);
    const a = await startGateway(env(shared));
    const b = backend === 'redis' ? await startGateway(env(shared)) : a;
    await members(a, 'c3', ['guest', 'host', 'friend']);
    await a.publish(REGISTER_BOOKING, { bookingId: 'bk1', guestId: 'guest', hostId: 'host' });
    const guestToken = await tokenFor('guest');

    // The host is connected (anywhere: on B); the friend is not.
    // Connections held open by a subscription of their own (a lazy client closes when idle).
    const host = connectWs(b.wsUrl, await tokenFor('host'));
    record(host.client, OWN_NOTIFICATIONS);
    await waitUntil(async () => {
      const { body } = await a.http(USER_PRESENCE_QUERY, { ids: ['host'], b: 'bk1' }, guestToken);
      return (body.data?.['userPresence'] as Array<{ online: boolean }> | undefined)?.[0]?.online === true;
    }, 'the host online');

    const byBooking = await a.http(USER_PRESENCE_QUERY, { ids: ['host', 'guest'], b: 'bk1' }, guestToken);
    expect(byBooking.body.data?.['userPresence']).toEqual([
      { userId: 'host', online: true, at: expect.any(String) },
      { userId: 'guest', online: false, at: expect.any(String) },
    ]);
    const byConversation = await a.http(USER_PRESENCE_QUERY, { ids: ['friend', 'host'], c: 'c3' }, guestToken);
    expect((byConversation.body.data?.['userPresence'] as Array<{ online: boolean }>).map((state) => state.online)).toEqual([false, true]);

    // Refused, never silently answered: a stranger, a friend through the booking, a conversation the viewer is not in.
    for (const [variables, token] of [
      [{ ids: ['stranger'] }, guestToken],
      [{ ids: ['friend'], b: 'bk1' }, guestToken],
      [{ ids: ['host'], c: 'c3' }, await tokenFor('outsider')],
    ] as const) {
      const { body } = await a.http(USER_PRESENCE_QUERY, variables, token);
      expect([body.data, body.errors?.[0]?.extensions?.['code']], JSON.stringify(variables)).toEqual([null, 'FORBIDDEN']);
    }
    const tooMany = await a.http(USER_PRESENCE_QUERY, { ids: Array.from({ length: 101 }, (_, index) => `u${index}`) }, guestToken);
    expect(tooMany.body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');

    // The subscription: the current state first, then the friend coming online and going offline.
    const guest = connectWs(a.wsUrl, guestToken);
    const states = record<{ userPresence: { userId: string; online: boolean } }>(guest.client, USER_PRESENCE, { ids: ['friend', 'host'], c: 'c3' });
    await states.waitForResults(2);
    const friend = connectWs(b.wsUrl, await tokenFor('friend'));
    record(friend.client, OWN_NOTIFICATIONS);
    await waitUntil(() => states.results.length === 3, 'the friend online');
    await friend.client.dispose();
    await waitUntil(() => states.results.length === 4, 'the friend offline');
    expect(states.results.map((result) => `${result.data?.userPresence.userId}:${result.data?.userPresence.online}`)).toEqual([
      'friend:false',
      'host:true',
      'friend:true',
      'friend:false',
    ]);
    const refused = record(guest.client, USER_PRESENCE, { ids: ['stranger'] });
    await refused.waitForEnd();
    expect(refused.results[0]?.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  }, 30_000);
});
