/**
 * Where a subscribed WebSocket connection's memory goes. Starts Redis and a gateway (production
 * mode, as the benchmark does), takes a heap snapshot, opens N connections with one
 * `priceUpdated` subscription each (own user, own hotel, like scenario 3), takes another, and
 * prints the retained growth per connection by object kind.
 *
 *   node --import tsx bench/heap-probe.ts [connections=1000] [top=40]
 *   PROBE_SUBSCRIBE=0 node --import tsx bench/heap-probe.ts   # connections only, no subscription
 *   PROBE_HOTELS=1 node --import tsx bench/heap-probe.ts      # every subscription on one hotel
 *   PROBE_SITES=1 node --import tsx bench/heap-probe.ts       # closures and contexts by source line
 *   PROBE_ANCHORS=1 node --import tsx bench/heap-probe.ts     # new objects by their nearest named holder
 *   PROBE_ALLOC=1 node --import tsx bench/heap-probe.ts       # everything allocated while connecting, by function
 *   PROBE_ALLOC=publish PROBE_PUBLISH=1 …                     # everything allocated delivering the events instead
 *   PROBE_SESSION=1 node --import tsx bench/heap-probe.ts     # scenario 10's session: four subscriptions per connection
 *   PROBE_FIELDS=notificationCreated,newMessage node --import tsx bench/heap-probe.ts   # only these kinds
 *   PROBE_PUBLISH=1 …                                         # one event to every topic before the second snapshot
 *   PROBE_TARGET=floor …                                      # the floor server instead (RSS only, as PROBE_MEMORY_ONLY=1)
 *
 * Session mode (PROBE_SESSION=1, or PROBE_FIELDS naming any of the kinds): each connection (its own
 * user) subscribes to its own `notificationCreated` and `bookingUpdated`, `priceUpdated` of hotel
 * `index % PROBE_HOTELS` (default 1,000 there) and `newMessage` of conversation
 * `index % ceil(N / PROBE_MEMBERS)` (conversations of PROBE_MEMBERS=5); the memberships are written
 * to the gateway's Redis, under its prefix, before anyone connects, as bench/run.ts does.
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import {
  BASIC,
  bookingEnvelopeNow,
  BOOKINGS,
  bookingsTopic,
  CONVERSATION,
  conversationMembersKey,
  conversationTopic,
  envelopeNow,
  INBOX,
  inboxTopic,
  messageEnvelopeNow,
  notificationEnvelopeNow,
  type Variant,
} from './lib/common.js';
import { freePort, killAll, memoryFiguresOf, ROOT, rssBytes, sleep, startFloor, startGateway, startRedis, waitFor, type Target } from './lib/procs.js';

const connections = Number(process.argv[2] ?? 1000);
const top = Number(process.argv[3] ?? 40);
/** PROBE_SUBSCRIBE=0: connections without a subscription, to tell the two costs apart. */
const subscribe = process.env['PROBE_SUBSCRIBE'] !== '0';
/** The four kinds of a session, by root field. */
const KINDS: Record<string, Variant> = { notificationCreated: INBOX, bookingUpdated: BOOKINGS, priceUpdated: BASIC, newMessage: CONVERSATION };
/** PROBE_SESSION=1: all four; PROBE_FIELDS=a,b: those; otherwise one priceUpdated per connection. */
const fields = process.env['PROBE_FIELDS']
  ? process.env['PROBE_FIELDS'].split(',').filter(Boolean)
  : process.env['PROBE_SESSION'] === '1'
    ? Object.keys(KINDS)
    : ['priceUpdated'];
for (const field of fields) if (!KINDS[field]) throw new Error(`PROBE_FIELDS: unknown field ${field} (one of ${Object.keys(KINDS).join(', ')})`);
const sessionMode = process.env['PROBE_SESSION'] === '1' || process.env['PROBE_FIELDS'] !== undefined;
/** PROBE_HOTELS=n: spread the subscriptions over n hotels (default: one hotel per connection; 1,000 in session mode). */
const hotels = Number(process.env['PROBE_HOTELS'] ?? (sessionMode ? 1000 : 0)) || Infinity;
/** PROBE_MEMBERS=n: members per conversation (session mode). */
const members = Number(process.env['PROBE_MEMBERS'] ?? 5);
const conversations = Math.ceil(connections / members);
/** The warm-up connections (indexes from WARM) have conversations of their own. */
const WARM = 1_000_000;
const WARM_COUNT = 50;
const conversationOf = (index: number) =>
  index >= WARM ? `probe-warm-conv-${Math.floor((index - WARM) / members)}` : `probe-conv-${index % conversations}`;
const userOf = (index: number) => `probe-${index}`;
const subscriptionsPerConnection = subscribe ? fields.length : 0;
/** PROBE_PUBLISH=1: after connecting, one event to every subscribed topic (what a group keeps once it has executed). */
const publish = process.env['PROBE_PUBLISH'] === '1';
/** `next` messages received by the probe's sockets. */
let received = 0;
const secret = randomUUID() + randomUUID();

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]]; location_fields: string[] } };
  nodes: number[];
  edges: number[];
  strings: string[];
  locations: number[];
}

interface Heap {
  /** Object ids (stable across snapshots of one process). */
  ids: Set<number>;
  /** For every node: id, kind and size; plus its first strong retainer's kind and edge name. */
  rows: Array<{ id: number; kind: string; bytes: number; owner: string; grandOwner: string; properties: string; site: string; anchor: string }>;
}

/** Kind of a node: constructor name for objects, function name for closures, type otherwise. */
function readHeap(file: string): Heap {
  const heap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const { node_fields: fields, node_types: [types], edge_fields: edgeFields, edge_types: [edgeTypes] } = heap.snapshot.meta;
  const width = fields.length;
  const edgeWidth = edgeFields.length;
  const at = (name: string) => fields.indexOf(name);
  const [typeAt, nameAt, idAt, sizeAt, edgeCountAt] = [at('type'), at('name'), at('id'), at('self_size'), at('edge_count')];
  const [edgeTypeAt, edgeNameAt, edgeToAt] = ['type', 'name_or_index', 'to_node'].map((field) => edgeFields.indexOf(field)) as [number, number, number];
  const kindOf = (index: number) => {
    const type = types[heap.nodes[index + typeAt]!]!;
    const name = heap.strings[heap.nodes[index + nameAt]!]!;
    return type === 'object' || type === 'closure' || type === 'native' ? `${type} ${name.slice(0, 50)}` : type;
  };
  const owner = new Map<number, string>();
  const ownerIndex = new Map<number, number>();
  const properties = new Map<number, string[]>();
  let edge = 0;
  for (let i = 0; i < heap.nodes.length; i += width) {
    const count = heap.nodes[i + edgeCountAt]!;
    for (let e = 0; e < count; e++, edge += edgeWidth) {
      const edgeType = edgeTypes[heap.edges[edge + edgeTypeAt]!]!;
      if (edgeType === 'weak' || edgeType === 'shortcut') continue;
      const to = heap.edges[edge + edgeToAt]!;
      if (edgeType === 'property' || edgeType === 'context') {
        const list = properties.get(i) ?? [];
        if (list.length < 8) list.push(String(heap.strings[heap.edges[edge + edgeNameAt]!]));
        properties.set(i, list);
      }
      if (owner.has(to)) continue;
      const nameOrIndex = heap.edges[edge + edgeNameAt]!;
      const edgeName = edgeType === 'element' || edgeType === 'hidden' ? `[${edgeType}]` : heap.strings[nameOrIndex]!;
      owner.set(to, `${kindOf(i)} .${String(edgeName).slice(0, 40)}`);
      ownerIndex.set(to, i);
    }
  }
  // Where a closure was written (file:line, from its SharedFunctionInfo's script and the snapshot's
  // locations); a context is attributed to the first closure that holds it.
  const closureSite = new Map<number, string>();
  const scriptOf = new Map<number, string>();
  {
    const locationFields = heap.snapshot.meta.location_fields;
    const [locObject, locLine] = [locationFields.indexOf('object_index'), locationFields.indexOf('line')] as [number, number];
    const locWidth = locationFields.length;
    const lineOf = new Map<number, number>();
    for (let l = 0; l < heap.locations.length; l += locWidth) lineOf.set(heap.locations[l + locObject]!, heap.locations[l + locLine]! + 1);
    let e = 0;
    for (let i = 0; i < heap.nodes.length; i += width) {
      const count = heap.nodes[i + edgeCountAt]!;
      for (let k = 0; k < count; k++, e += edgeWidth) {
        if (heap.strings[heap.edges[e + edgeNameAt]!] === 'script_or_debug_info') {
          const to = heap.edges[e + edgeToAt]!;
          scriptOf.set(i, heap.strings[heap.nodes[to + nameAt]!]!.replace(/^.*node_modules\//, '~/').replace(/^.*\/main\//, ''));
        }
      }
    }
    e = 0;
    for (let i = 0; i < heap.nodes.length; i += width) {
      const count = heap.nodes[i + edgeCountAt]!;
      const isClosure = types[heap.nodes[i + typeAt]!] === 'closure';
      for (let k = 0; k < count; k++, e += edgeWidth) {
        if (isClosure && heap.strings[heap.edges[e + edgeNameAt]!] === 'shared') {
          const script = scriptOf.get(heap.edges[e + edgeToAt]!) ?? '?';
          closureSite.set(i, `${script}:${lineOf.get(i) ?? '?'}`);
        }
      }
    }
  }
  // The nearest named holder up the first-retainer chain: an object of a named class or a named
  // closure (plain objects, arrays, contexts, maps and sets are looked through).
  const generic = /^(array|hidden|string|concatenated string|sliced string|number|code|synthetic|object shape|closure |object (Object|Array|system \/ Context|Map|Set|Promise|WeakMap|ArrayBuffer|Buffer|Generator)|closure native_bind)$/;
  const anchorOf = (i: number): string => {
    let at: number | undefined = ownerIndex.get(i);
    for (let depth = 0; at !== undefined && depth < 16; depth++, at = ownerIndex.get(at)) {
      const kind = kindOf(at);
      if (!generic.test(kind)) return closureSite.has(at) ? `${kind} @${closureSite.get(at)}` : kind;
    }
    return '(unattributed)';
  };
  const ids = new Set<number>();
  const rows: Heap['rows'] = [];
  for (let i = 0; i < heap.nodes.length; i += width) {
    const id = heap.nodes[i + idAt]!;
    ids.add(id);
    const parent = ownerIndex.get(i);
    rows.push({
      id,
      kind: kindOf(i),
      bytes: heap.nodes[i + sizeAt]!,
      owner: owner.get(i) ?? '(root)',
      grandOwner: parent === undefined ? '(root)' : `${owner.get(parent) ?? '(root)'} {${(properties.get(parent) ?? []).join(',')}}`,
      properties: (properties.get(i) ?? []).join(','),
      anchor: process.env['PROBE_ANCHORS'] === '1' ? anchorOf(i) : '',
      site: closureSite.get(i) ?? (parent !== undefined && closureSite.has(parent) ? `context of ${closureSite.get(parent)}` : ''),
    });
  }
  return { ids, rows };
}

async function snapshotOf(pid: number): Promise<string> {
  const before = new Set(readdirSync(ROOT).filter((name) => name.endsWith('.heapsnapshot')));
  process.kill(pid, 'SIGUSR2');
  const file = await waitFor('heap snapshot', 120_000, () => {
    const written = readdirSync(ROOT).find((name) => name.endsWith('.heapsnapshot') && !before.has(name));
    if (!written) return undefined;
    const path = join(ROOT, written);
    // Written in one go by V8; wait until its size stops changing.
    const size = statSync(path).size;
    return size > 0 ? sleep(1_000).then(() => (statSync(path).size === size ? path : undefined)) : undefined;
  }, 500);
  return file;
}

/** Where the process' memory grew, as the gateway reports it (prom-client's process and V8 figures). */
function printMemory(before: Map<string, number>, after: Map<string, number>, connections: number): void {
  process.stdout.write('\nprocess memory growth per connection (KB; with snapshots, the first one is included)\n');
  for (const [name, value] of after) {
    const growth = (value - (before.get(name) ?? 0)) / 1024 / connections;
    if (Math.abs(growth) >= 0.05) process.stdout.write(`${growth.toFixed(2).padStart(10)}  ${name}\n`);
  }
}

async function open(url: string, index: number): Promise<WebSocket> {
  const token = await new SignJWT({ roles: ['user'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userOf(index))
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(secret));
  const socket = new WebSocket(url, 'graphql-transport-ws');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as { type: string; id?: string; payload?: unknown };
      if (message.type === 'connection_ack') {
        if (subscribe) {
          fields.forEach((field, k) => {
            const variant = KINDS[field]!;
            const variables = variant.ownRoom ? {} : variant.conversation ? { c: conversationOf(index) } : { h: `probe-hotel-${index % hotels}` };
            socket.send(JSON.stringify({ id: String(k + 1), type: 'subscribe', payload: { query: variant.query, variables } }));
          });
        }
        resolve();
      } else if (message.type === 'next') {
        received++;
      } else if (message.type === 'error' || message.type === 'complete') {
        process.stderr.write(`connection ${index}: ${message.type} of subscription ${message.id}: ${JSON.stringify(message.payload ?? null).slice(0, 300)}\n`);
      }
    });
  });
  return socket;
}

/** A Chrome DevTools Protocol session with the gateway's inspector. */
async function inspectorSession(port: number): Promise<(method: string, params?: Record<string, unknown>) => Promise<Record<string, unknown>>> {
  const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
  const socket = new WebSocket(target!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let nextId = 1;
  const waiting = new Map<number, (result: Record<string, unknown>) => void>();
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown> };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result ?? {});
  });
  return (method, params = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
}

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

/** Bytes allocated per connection by function (self) and by the first frame of the gateway's own code (total). */
function printAllocations(root: SamplingNode, connections: number, top: number): void {
  const self = new Map<string, number>();
  const own = new Map<string, number>();
  const name = (frame: SamplingNode['callFrame']) =>
    `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*node_modules\//, '~/').replace(/^.*\/main\//, '')}:${frame.lineNumber + 1}`;
  let total = 0;
  const walk = (node: SamplingNode, ownFrame: string | undefined) => {
    const frame = name(node.callFrame);
    const mine = node.callFrame.url.includes('/dist/') && !node.callFrame.url.includes('node_modules') ? frame : ownFrame;
    if (node.selfSize > 0) {
      total += node.selfSize;
      self.set(frame, (self.get(frame) ?? 0) + node.selfSize);
      own.set(mine ?? '(not under the gateway\'s own code)', (own.get(mine ?? "(not under the gateway's own code)") ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, mine);
  };
  walk(root, undefined);
  // PROBE_ALLOC_UNDER='prepareOperation': what is allocated beneath the gateway functions named so.
  const under = process.env['PROBE_ALLOC_UNDER'];
  if (under) {
    const beneath = new Map<string, number>();
    const collect = (node: SamplingNode, inside: boolean, path: string[]) => {
      const frame = name(node.callFrame);
      const now = inside || frame.startsWith(`${under} `);
      const trail = now ? [...path, node.callFrame.functionName || '(anonymous)'].slice(-4) : path;
      if (now && node.selfSize > 0) beneath.set(`${frame}  [${trail.join(' < ')}]`, (beneath.get(`${frame}  [${trail.join(' < ')}]`) ?? 0) + node.selfSize);
      for (const child of node.children) collect(child, now, trail);
    };
    collect(root, false, []);
    process.stdout.write(`\nallocated beneath ${under}, by function [last frames]\nbytes/conn\n`);
    for (const [key, bytes] of [...beneath].sort((x, y) => y[1] - x[1]).slice(0, top)) process.stdout.write(`${(bytes / connections).toFixed(0).padStart(10)}  ${key}\n`);
  }
  const phase = process.env['PROBE_ALLOC'] === 'publish' ? 'while delivering' : 'while connecting';
  process.stdout.write(`\nallocated ${phase}: ${(total / connections / 1024).toFixed(1)} KB per connection (sampled)\n`);
  for (const [title, map] of [['by function (self)', self], ['by the innermost gateway function on the stack', own]] as const) {
    process.stdout.write(`\n${title}\nbytes/conn\n`);
    for (const [key, bytes] of [...map].sort((x, y) => y[1] - x[1]).slice(0, top)) process.stdout.write(`${(bytes / connections).toFixed(0).padStart(10)}  ${key}\n`);
  }
}

async function main() {
  const redis = await startRedis();
  // PROBE_ALLOC=publish (with PROBE_PUBLISH=1): only what delivering the events allocates.
  const allocationsWhilePublishing = process.env['PROBE_ALLOC'] === 'publish';
  const allocations = process.env['PROBE_ALLOC'] === '1' || allocationsWhilePublishing;
  const inspectPort = allocations ? await freePort() : 0;
  const prefix = `probe:${randomUUID()}:`;
  if (subscribe && fields.includes('newMessage')) {
    // The memberships the message service keeps, under the gateway's prefix (as bench/run.ts writes them).
    const pipeline = redis.client.pipeline();
    for (let index = 0; index < connections; index++) pipeline.sadd(`${prefix}${conversationMembersKey(conversationOf(index))}`, userOf(index));
    for (let index = WARM; index < WARM + WARM_COUNT; index++) pipeline.sadd(`${prefix}${conversationMembersKey(conversationOf(index))}`, userOf(index));
    await pipeline.exec();
  }
  process.stdout.write(
    `mode: ${subscribe ? `${fields.join(' + ')} per connection${fields.includes('priceUpdated') ? `, ${hotels === Infinity ? 'a hotel each' : `${hotels} hotels`}` : ''}${fields.includes('newMessage') ? `, ${conversations} conversations of ${members}` : ''}` : 'connections only'}\n`,
  );
  // PROBE_TARGET=floor: the floor server, for its RSS under the same clients (no heap figures, no snapshots).
  const floor = process.env['PROBE_TARGET'] === 'floor';
  const gateway: Target = floor
    ? await startFloor({ redisUrl: redis.url, prefix, secret, name: 'heap-probe-floor' })
    : await startGateway({
        redisUrl: redis.url,
        prefix,
        secret,
        name: 'heap-probe',
        nodeFlags: ['--heapsnapshot-signal=SIGUSR2', ...(allocations ? [`--inspect=127.0.0.1:${inspectPort}`] : []), ...(process.env['PROBE_NODE_FLAGS'] ?? '').split(' ').filter(Boolean)],
      });
  /** The target's memory figures, with VmRSS read from /proc (the floor reports nothing itself). */
  const figuresOf = async () => (await memoryFiguresOf(gateway)).set('VmRSS', rssBytes(gateway.pid));
  const warm = await Promise.all(Array.from({ length: WARM_COUNT }, (_v, i) => open(gateway.wsUrl, WARM + i)));
  await sleep(1_000);
  warm.forEach((socket) => socket.close());
  await waitFor('warm-up connections gone', 10_000, async () => ((await gateway.stats()).connections === 0 ? true : undefined));
  const inspector = allocations ? await inspectorSession(inspectPort) : undefined;
  // Every allocation, sampled every 512 bytes, including what the garbage collector took back.
  const startSampling = () => inspector?.('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  if (!allocationsWhilePublishing) await startSampling();
  const memoryBefore = await figuresOf();
  // PROBE_MEMORY_ONLY=1: no snapshots (writing one grows the process by its own buffers).
  const memoryOnly = process.env['PROBE_MEMORY_ONLY'] === '1' || floor;
  const before = memoryOnly ? '' : await snapshotOf(gateway.pid);
  const sockets: WebSocket[] = [];
  for (let i = 0; i < connections; i += 100) sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, connections - i) }, (_v, j) => open(gateway.wsUrl, i + j)))));
  await waitFor('every connection registered', 30_000, async () => {
    const stats = await gateway.stats();
    return stats.connections === connections && stats.subscriptions === connections * subscriptionsPerConnection ? true : undefined;
  });
  if (allocationsWhilePublishing) await startSampling();
  if (publish && subscribe) {
    // Every topic once, straight onto Redis in the gateway's envelopes (as bench/run.ts publishes).
    const messages = new Map<string, string>();
    let expected = 0;
    for (let index = 0; index < connections; index++) {
      for (const field of fields) {
        const user = userOf(index);
        const hotel = `probe-hotel-${index % hotels}`;
        const conversation = conversationOf(index);
        const [channel, message] =
          field === 'notificationCreated'
            ? [inboxTopic(user), () => notificationEnvelopeNow(user, index)]
            : field === 'bookingUpdated'
              ? [bookingsTopic(user), () => bookingEnvelopeNow(user, index)]
              : field === 'priceUpdated'
                ? [`price:${hotel}`, () => envelopeNow(hotel, index)]
                : [conversationTopic(conversation), () => messageEnvelopeNow(conversation, index)];
        if (!messages.has(channel)) messages.set(channel, message());
        expected++;
      }
    }
    const pipeline = redis.client.pipeline();
    for (const [channel, message] of messages) pipeline.publish(`${prefix}${channel}`, message);
    await pipeline.exec();
    await waitFor(`${expected} results (${messages.size} events)`, 30_000, () => (received >= expected ? true : undefined)).catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}: ${received} received\n`);
    });
    process.stdout.write(`published ${messages.size} events, ${received} results received\n`);
  }
  // PROBE_SETTLE=s: wait longer before reading memory (V8 and malloc give pages back over time).
  await sleep(Number(process.env['PROBE_SETTLE'] ?? 2) * 1000);
  const memoryAfter = await figuresOf();
  if (inspector) {
    const { profile } = (await inspector('HeapProfiler.stopSampling')) as { profile: { head: SamplingNode } };
    printAllocations(profile.head, connections, top);
  }
  if (memoryOnly) {
    printMemory(memoryBefore, memoryAfter, connections);
    sockets.forEach((socket) => socket.terminate());
    await gateway.stop();
    await redis.client.quit();
    killAll();
    return;
  }
  const after = await snapshotOf(gateway.pid);
  const before_ = readHeap(before);
  const after_ = readHeap(after);
  // New objects only: present after, absent before (ids are stable within a process).
  const added = after_.rows.filter((row) => !before_.ids.has(row.id));
  const total = added.reduce((sum, row) => sum + row.bytes, 0);
  process.stdout.write(`${connections} connections × ${subscriptionsPerConnection} subscriptions: ${(total / 1024 / 1024).toFixed(1)} MB of new objects, ${(total / connections / 1024).toFixed(2)} KB per connection\n`);
  const table = (title: string, keyOf: (row: Heap['rows'][number]) => string) => {
    const groups = new Map<string, { bytes: number; count: number }>();
    for (const row of added) {
      const key = keyOf(row);
      const entry = groups.get(key) ?? { bytes: 0, count: 0 };
      entry.bytes += row.bytes;
      entry.count++;
      groups.set(key, entry);
    }
    process.stdout.write(`\n${title}\nbytes/conn  objects/conn\n`);
    for (const [key, { bytes, count }] of [...groups].sort((x, y) => y[1].bytes - x[1].bytes).slice(0, top)) {
      process.stdout.write(`${(bytes / connections).toFixed(0).padStart(10)}  ${(count / connections).toFixed(2).padStart(12)}  ${key}\n`);
    }
  };
  printMemory(memoryBefore, memoryAfter, connections);
  table('by kind', (row) => row.kind);
  table('by kind and first retainer', (row) => `${row.kind}  <-  ${row.owner}`);
  if (process.env['PROBE_ANCHORS'] === '1') {
    table('by nearest named holder', (row) => row.anchor);
    // PROBE_ANCHOR='object MemberStream,object Timeout': what those hold, by kind and retainer.
    for (const anchor of (process.env['PROBE_ANCHOR'] ?? '').split(',').filter(Boolean)) {
      table(`held by ${anchor}`, (row) => (row.anchor === anchor ? `${row.kind}  <-  ${row.owner}` : '(other)'));
    }
  }
  if (process.env['PROBE_SITES'] === '1') {
    table('closures and their contexts by where the closure was written', (row) => (row.site ? `${row.kind.startsWith('closure') ? 'closure' : 'context'} ${row.site}` : '(other)'));
  }
  // PROBE_DETAIL='kind|owner prefix', several separated by ';'.
  for (const detail of (process.env['PROBE_DETAIL'] ?? '').split(';').filter(Boolean)) {
    const [kind, ownerPrefix = ''] = detail.split('|') as [string, string?];
    table(`detail: ${kind} <- ${ownerPrefix}… by the retainer's retainer {its properties}`, (row) =>
      row.kind === kind && row.owner.startsWith(ownerPrefix) ? row.grandOwner : '(other)',
    );
    table(`properties of new ${kind}`, (row) => (row.kind === kind ? `{${row.properties}} <- ${row.owner}` : '(other)'));
  }
  sockets.forEach((socket) => socket.terminate());
  rmSync(before);
  rmSync(after);
  await gateway.stop();
  await redis.client.quit();
  killAll();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  killAll();
  process.exit(1);
});
