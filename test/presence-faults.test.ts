import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Redis } from 'ioredis';
import { createMemoryDirectory } from '../src/directory/memory-directory.js';
import { startGateway, TEST_JWT_SECRET, tokenFor, type GraphQLBody } from './support/gateway.js';
import { ADD_MEMBERS, NEW_MESSAGE } from './support/operations.js';
import { randomPrefix, startRedis, type TestRedis } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record, type Recording } from './support/ws-client.js';

/**
 * Presence when things break (docs/CHANNELS.md "Presence", PRESENCE_* in docs/OPERATIONS.md): an
 * instance killed with SIGKILL says no goodbye, so its users go LEFT/offline only when their
 * entries expire and a surviving instance sweeps them, within TTL + a sweep (TTL/6) + the
 * coalescing interval; a Redis restart loses every entry, and each instance's heartbeat (TTL/3)
 * writes its own again, without bringing back anyone who left meanwhile (and who watched through
 * the outage is told they left); a graceful stop hands its entries over, to expire after the grace
 * period, so users who reconnect elsewhere show no change. Real gateway
 * processes where a process must die, on a private redis-server (never the machine's 6379).
 */

const TTL_SECONDS = 3;
const TTL_MS = TTL_SECONDS * 1000;
const GRACE_MS = 200;
const COALESCE_MS = 100;
/** docs/OPERATIONS.md: the users of an instance that died are LEFT/offline within this. */
const CRASH_BOUND_MS = TTL_MS + TTL_MS / 6 + COALESCE_MS;
const presenceEnv = { PRESENCE_TTL_SECONDS: String(TTL_SECONDS), PRESENCE_GRACE_MS: String(GRACE_MS), PRESENCE_COALESCE_MS: String(COALESCE_MS) };

const PRESENCE = 'subscription P($c: ID!) { presence(conversationId: $c) { conversationId kind present changes { userId change at } at } }';
const USER_PRESENCE = 'subscription U($ids: [ID!]!, $c: ID) { userPresence(userIds: $ids, conversationId: $c) { userId online at } }';
const USER_PRESENCE_QUERY = 'query U($ids: [ID!]!, $c: ID) { userPresence(userIds: $ids, conversationId: $c) { userId online at } }';

interface PresenceUpdate {
  presence: { conversationId: string; kind: 'SNAPSHOT' | 'CHANGES'; present: string[] | null; changes: Array<{ userId: string; change: 'JOINED' | 'LEFT'; at: string }> };
}
interface UserPresenceUpdate {
  userPresence: { userId: string; online: boolean; at: string };
}

/** Every change delivered so far, flattened, as `user:CHANGE`. */
const changesOf = (recording: Recording<PresenceUpdate>) =>
  recording.results.flatMap((result) => result.data?.presence.changes.map((change) => `${change.userId}:${change.change}`) ?? []);
/** The online states delivered so far, as `user:true|false`. */
const statesOf = (recording: Recording<UserPresenceUpdate>) =>
  recording.results.map((result) => `${result.data?.userPresence.userId}:${result.data?.userPresence.online}`);
/** Fails on anything but data (an error frame would otherwise read as "not yet"). */
function expectNoErrors(recording: Recording<unknown>) {
  expect(recording.results.flatMap((result) => result.errors ?? []), 'errors delivered').toEqual([]);
  expect(recording.failure.value, 'subscription failure').toBeUndefined();
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const repoRoot = fileURLToPath(new URL('../', import.meta.url));

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

interface GatewayProcess {
  readonly wsUrl: string;
  readonly httpUrl: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

/** A gateway as its own process (the sources through tsx, as test/amqp-faults.test.ts runs one), killed when the test ends. */
async function startGatewayProcess(name: string, env: Record<string, string>): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: repoRoot,
    env: {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      NODE_ENV: 'test',
      JWT_SECRET: TEST_JWT_SECRET,
      HOST: '127.0.0.1',
      PORT: '0',
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      WEB_APP: 'false',
      INSTANCE_ID: name,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let url: string | undefined;
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'Tidings is listening') url = entry.url;
    } catch {
      // not a log line
    }
  });
  let gone = false;
  void exited.then(() => (gone = true));
  await waitUntil(() => gone || url !== undefined, `gateway process ${name} to listen`, 30_000).catch((error: Error) => {
    throw new Error(`${error.message}\nstderr: ${stderr}`);
  });
  if (gone || !url) throw new Error(`gateway process ${name} exited during start-up\nstderr: ${stderr}`);
  await waitUntil(async () => (await fetch(url!.replace('/graphql', '/ready'))).ok, `gateway process ${name} to be ready`, 15_000);
  return { wsUrl: url.replace(/^http/, 'ws'), httpUrl: url, exited, kill: (signal) => child.kill(signal) };
}

async function postGraphQL(httpUrl: string, query: string, variables: Record<string, unknown>, token: string): Promise<GraphQLBody> {
  const response = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLBody;
}

/** `userId`'s online state as `viewer` reads it with the userPresence query (through `conversationId`). */
async function onlineNow(httpUrl: string, viewer: string, userId: string, conversationId: string): Promise<boolean | undefined> {
  const body = await postGraphQL(httpUrl, USER_PRESENCE_QUERY, { ids: [userId], c: conversationId }, await tokenFor(viewer));
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return (body.data?.['userPresence'] as Array<{ online: boolean }> | undefined)?.[0]?.online;
}

/** The members (before the `|`) of every presence entry under `prefix`, live or expired: what is left in Redis. */
async function presenceMembersInRedis(client: Redis, prefix: string): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  for (const key of await client.keys(`${prefix}presence:*`)) {
    const type = await client.type(key);
    const members = type === 'zset' ? await client.zrange(key, 0, -1) : type === 'hash' ? await client.hkeys(key) : [];
    found.set(key, members.map((member) => member.split('|')[0]!));
  }
  return found;
}

describe('presence when an instance dies', () => {
  it('announces the users of an instance killed with SIGKILL LEFT and offline within TTL + sweep + coalescing', async () => {
    const prefix = randomPrefix();
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: prefix, ...presenceEnv };
    const [a, b] = await Promise.all([startGatewayProcess('survivor', env), startGatewayProcess('doomed', env)]);
    const service = await tokenFor('message-service', ['service']);
    const added = await postGraphQL(a.httpUrl, ADD_MEMBERS, { conversationId: 'crash-1', userIds: ['alice', 'bob'] }, service);
    expect(added.errors).toBeUndefined();

    const alice = connectWs(a.wsUrl, await tokenFor('alice'));
    const watching = record<PresenceUpdate>(alice.client, PRESENCE, { c: 'crash-1' });
    await watching.waitForResults(1);
    expect(watching.results[0]?.data?.presence).toMatchObject({ kind: 'SNAPSHOT', present: ['alice'] });

    const bob = connectWs(b.wsUrl, await tokenFor('bob'));
    record(bob.client, NEW_MESSAGE, { conversationId: 'crash-1' });
    await waitUntil(() => changesOf(watching).includes('bob:JOINED'), 'bob JOINED, from the other process');
    const online = record<UserPresenceUpdate>(alice.client, USER_PRESENCE, { ids: ['bob'], c: 'crash-1' });
    await waitUntil(() => statesOf(online).at(-1) === 'bob:true', 'bob online');

    // No goodbye: the process is gone at once, its entries stay in Redis until they expire.
    const killedAt = Date.now();
    b.kill('SIGKILL');
    expect(await b.exited).toEqual({ code: null, signal: 'SIGKILL' });
    let leftAt = 0;
    let offlineAt = 0;
    await waitUntil(
      () => {
        if (!leftAt && changesOf(watching).includes('bob:LEFT')) leftAt = Date.now();
        if (!offlineAt && statesOf(online).at(-1) === 'bob:false') offlineAt = Date.now();
        return leftAt > 0 && offlineAt > 0;
      },
      'bob LEFT and offline after the SIGKILL',
      3 * CRASH_BOUND_MS,
    );
    console.log(`presence after SIGKILL: bob LEFT after ${leftAt - killedAt} ms, offline after ${offlineAt - killedAt} ms (documented bound ${CRASH_BOUND_MS} ms)`);
    expectNoErrors(watching);
    expectNoErrors(online);
    expect(changesOf(watching)).toEqual(['bob:JOINED', 'bob:LEFT']);
    expect(statesOf(online)).toEqual(['bob:true', 'bob:false']);
    // Present nowhere, also for a fresh reader.
    expect(await onlineNow(a.httpUrl, 'alice', 'bob', 'crash-1')).toBe(false);
  }, 60_000);

  it('hands over at a graceful stop: a user who reconnects elsewhere within the grace period shows no change, one who does not is LEFT soon after it', async () => {
    // TTL 3 s (sweeps every 0.5 s), grace 1 s: LEFT comes after the grace period and a sweep,
    // long before the TTL would have it; nothing at all for the one who moved.
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), PRESENCE_TTL_SECONDS: '3', PRESENCE_GRACE_MS: '1000', PRESENCE_COALESCE_MS: String(COALESCE_MS) };
    const a = await startGateway(env);
    const b = await startGateway(env);
    await a.publish(ADD_MEMBERS, { conversationId: 'stop-1', userIds: ['alice', 'bob', 'carol'] });
    const alice = connectWs(a.wsUrl, await tokenFor('alice'));
    const watching = record<PresenceUpdate>(alice.client, PRESENCE, { c: 'stop-1' });
    await watching.waitForResults(1);
    const online = record<UserPresenceUpdate>(alice.client, USER_PRESENCE, { ids: ['bob', 'carol'], c: 'stop-1' });
    await online.waitForResults(2);
    for (const user of ['bob', 'carol']) record(connectWs(b.wsUrl, await tokenFor(user)).client, NEW_MESSAGE, { conversationId: 'stop-1' });
    await waitUntil(() => changesOf(watching).length === 2 && statesOf(online).length === 4, 'bob and carol JOINED and online');

    // A rolling deploy: B stops, bob reconnects to A at once, carol does not come back.
    const stoppedAt = Date.now();
    await b.app.stop();
    record(connectWs(a.wsUrl, await tokenFor('bob')).client, NEW_MESSAGE, { conversationId: 'stop-1' });
    await waitUntil(() => changesOf(watching).includes('carol:LEFT') && statesOf(online).at(-1) === 'carol:false', 'carol LEFT and offline', 5_000);
    const delay = Date.now() - stoppedAt;
    console.log(`presence after a graceful stop: carol LEFT and offline ${delay} ms after stop() began (grace 1000 ms, sweep every 500 ms)`);
    expect(delay).toBeGreaterThanOrEqual(1_000);
    // Two more sweeps: bob's handed-over entry is gone by now, and he never left.
    await pause(1_200);
    expectNoErrors(watching);
    expect(changesOf(watching).sort()).toEqual(['bob:JOINED', 'carol:JOINED', 'carol:LEFT']);
    expect(statesOf(online).slice(2).sort()).toEqual(['bob:true', 'carol:false', 'carol:true']);
    expect(await onlineNow(a.httpUrl, 'alice', 'bob', 'stop-1')).toBe(true);
  }, 30_000);
});

describe('presence across a Redis restart', () => {
  it('is rebuilt by the heartbeat after every key was lost; who left during the outage is announced LEFT and leaves nothing behind', async () => {
    const prefix = randomPrefix();
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: prefix, ...presenceEnv };
    // The memberships live in the message service's own store here, which the restart does not
    // touch: with them in the Redis that restarts, every member's subscriptions would rightly end
    // FORBIDDEN (the directory re-checks after a reconnect) and there would be no presence to rebuild.
    const directory = createMemoryDirectory();
    const a = await startGateway(env, { directory });
    const b = await startGateway(env, { directory });
    const inspector = redis.client();
    await a.publish(ADD_MEMBERS, { conversationId: 'restart-1', userIds: ['alice', 'bob', 'carol', 'dave'] });
    const entriesKey = `${prefix}presence:{conversation:restart-1}:entries`;
    const liveUsers = async () => [...new Set((await inspector.zrangebyscore(entriesKey, `(${Date.now()}`, '+inf')).map((member) => member.split('|')[0]))].sort();

    // Dave (on B) watches through the outage; bob on B and carol on A hold the conversation
    // through a newMessage subscription each.
    const dave = connectWs(b.wsUrl, await tokenFor('dave'));
    const daveWatching = record<PresenceUpdate>(dave.client, PRESENCE, { c: 'restart-1' });
    await daveWatching.waitForResults(1);
    const daveStates = record<UserPresenceUpdate>(dave.client, USER_PRESENCE, { ids: ['bob', 'carol'], c: 'restart-1' });
    await daveStates.waitForResults(2);
    const bob = connectWs(b.wsUrl, await tokenFor('bob'));
    const bobMessages = record(bob.client, NEW_MESSAGE, { conversationId: 'restart-1' });
    const carol = connectWs(a.wsUrl, await tokenFor('carol'));
    record(carol.client, NEW_MESSAGE, { conversationId: 'restart-1' });
    await waitUntil(() => changesOf(daveWatching).length === 2 && statesOf(daveStates).length === 4, 'bob and carol JOINED and online');
    expect(new Set(changesOf(daveWatching))).toEqual(new Set(['bob:JOINED', 'carol:JOINED']));
    expect(await liveUsers()).toEqual(['bob', 'carol', 'dave']);

    // Redis dies and comes back empty; carol leaves while it is away (her release cannot be written).
    await redis.kill();
    await carol.client.dispose();
    await pause(GRACE_MS + 300);
    await redis.restart();
    const restartedAt = Date.now();

    // The heartbeat (every TTL/3) writes bob's entries again, from B, with nobody doing anything.
    await waitUntil(async () => (await liveUsers()).includes('bob'), 'bob present in Redis again', 10_000);
    console.log(`presence after a Redis restart: bob's entry back ${Date.now() - restartedAt} ms after Redis (heartbeat every ${TTL_MS / 3} ms)`);
    expect(bobMessages.isComplete()).toBe(false);
    const alice = connectWs(a.wsUrl, await tokenFor('alice'));
    const watching = record<PresenceUpdate>(alice.client, PRESENCE, { c: 'restart-1' });
    await watching.waitForResults(1);
    expectNoErrors(watching);
    expect(watching.results[0]?.data?.presence.kind).toBe('SNAPSHOT');
    expect(watching.results[0]?.data?.presence.present?.slice().sort()).toEqual(['alice', 'bob', 'dave']);
    expect(await onlineNow(a.httpUrl, 'alice', 'bob', 'restart-1')).toBe(true);
    expect(await onlineNow(a.httpUrl, 'alice', 'carol', 'restart-1')).toBe(false);

    // Who watched through the outage learns that carol left (her LEFT could not be written or
    // announced while Redis was away), and sees no change for bob.
    await waitUntil(() => changesOf(daveWatching).includes('carol:LEFT') && statesOf(daveStates).at(-1) === 'carol:false', 'carol LEFT and offline, for the watcher of before the outage', 3 * CRASH_BOUND_MS);
    console.log(`presence after a Redis restart: carol (gone during the outage) LEFT and offline ${Date.now() - restartedAt} ms after Redis`);

    // Past a whole TTL (and a sweep) after the restart nothing of carol's is anywhere in Redis:
    // not rebuilt by A's heartbeat, not left behind by the release that failed.
    await pause(Math.max(0, restartedAt + TTL_MS + TTL_MS / 6 + 500 - Date.now()));
    const left = await presenceMembersInRedis(inspector, prefix);
    expect(left.size).toBeGreaterThan(0);
    expect([...left].filter(([, users]) => users.includes('carol'))).toEqual([]);
    expect([...left.keys()].filter((key) => key.includes('{user:carol}'))).toEqual([]);
    // …while the others' are kept alive by their instances' heartbeats.
    expect(await liveUsers()).toEqual(['alice', 'bob', 'dave']);

    // Bob goes too: LEFT and offline, so nobody stays online forever after the restart.
    const online = record<UserPresenceUpdate>(alice.client, USER_PRESENCE, { ids: ['bob'], c: 'restart-1' });
    await waitUntil(() => statesOf(online).at(-1) === 'bob:true', 'bob online');
    await bob.client.dispose();
    await waitUntil(
      () => changesOf(watching).includes('bob:LEFT') && statesOf(online).at(-1) === 'bob:false' && changesOf(daveWatching).includes('bob:LEFT'),
      'bob LEFT and offline',
      3 * CRASH_BOUND_MS,
    );
    for (const recording of [watching, online, daveWatching, daveStates]) expectNoErrors(recording);
    expect(changesOf(watching)).toEqual(['bob:LEFT']);
    // Dave saw no change for bob at the restart (re-announced JOINED, already shown), alice arrive, carol and bob leave.
    expect(changesOf(daveWatching).slice(2).sort()).toEqual(['alice:JOINED', 'bob:LEFT', 'carol:LEFT']);
    expect(statesOf(daveStates).slice(4)).toEqual(['carol:false', 'bob:false']);
    expect(await onlineNow(a.httpUrl, 'alice', 'bob', 'restart-1')).toBe(false);
    expect(await liveUsers()).toEqual(['alice', 'dave']);
  }, 60_000);
});
