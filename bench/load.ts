/**
 * A load-generator process, driven by the orchestrator over IPC. Opens WebSockets with the
 * graphql-transport-ws subprotocol (`ws` client: protocol-correct, answers pings), sends
 * connection_init with a Bearer JWT (one user id per connection), subscribes once per socket and
 * records, per `next`, publish-to-receive latency from the `R-<seq>-<µs>` roomType. Only what is
 * needed is parsed: one indexOf per frame, unless `verify` is on (scenario 6), where every result
 * is parsed and compared with what that subscriber's selection set and role must see.
 *
 * A connection may hold more subscriptions than its first (`extra`: the session scenario), and
 * `storm` drops every socket at once and reconnects them all with the same tokens, recording when
 * each connection first receives again (the reconnect-storm scenario). `join` subscribes every open
 * connection to one more room and `leave` completes that subscription again; presence frames
 * (SNAPSHOT, CHANGES and the changes in them) are counted, not timed (the presence scenario).
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { canonical, eventIdOf, expectedResult, Histogram, nowMs, occurredAtOf, parseRoomType, priceData, variantByName, type Variant } from './lib/common.js';

export interface OpenPlan {
  url: string;
  secret: string;
  /** connection indexes [start, start + count) */
  start: number;
  count: number;
  /** user ids: `${userPrefix}${index}` */
  userPrefix: string;
  hotels: number;
  hotelPrefix: string;
  variants: string[];
  /** every other connection of a variant gets roles [user, admin] */
  mixedRoles: boolean;
  localAddresses: string[];
  concurrency: number;
  verify: boolean;
  /** stop opening after this many ms */
  deadlineMs: number;
  /** give up on one connection after this many ms */
  connectTimeoutMs: number;
  /** stop opening after this many failures */
  maxFailures: number;
  /**
   * More subscriptions on every connection, subscribed right after the first: each to room
   * `${roomPrefix}${index % rooms}` (unused by own-room variants).
   */
  extra?: { variant: string; rooms: number; roomPrefix: string }[];
}

export type Command =
  | { cmd: 'open'; plan: OpenPlan }
  | { cmd: 'reset' }
  | { cmd: 'count' }
  | { cmd: 'report'; expectedByHotel: Record<string, number> }
  /** Drop every socket at once, then reopen and resubscribe them all with the same tokens. */
  | { cmd: 'storm'; concurrency: number }
  /** Which subscribed connections have not received anything since the storm began. */
  | { cmd: 'pending' }
  /** Per connection, the time from `since` (epoch ms) until it first received after the storm. */
  | { cmd: 'recovery'; since: number }
  /** Every subscribed connection subscribes `variant` to room `${roomPrefix}${index % rooms}` as operation `${id}${index}`. */
  | { cmd: 'join'; variant: string; rooms: number; roomPrefix: string; id: string }
  /** Every connection completes operation `${id}${index}` (sent by `join`). */
  | { cmd: 'leave'; id: string }
  /** The presence frames and changes received since the last reset. */
  | { cmd: 'presence' }
  | { cmd: 'close' };

interface Conn {
  readonly index: number;
  jwt: string;
  socket: WebSocket | undefined;
  hotel: number;
  variant: Variant;
  admin: boolean;
  received: number;
  subscribed: boolean;
  closedCode: number | undefined;
  /** When (epoch ms) this connection first received a result since the last storm began; 0 if not yet. */
  receivedAt: number;
}

const conns: Conn[] = [];
let plan: OpenPlan | undefined;
let hist = new Histogram();
let received = 0;
let mismatches = 0;
let checked = 0;
const mismatchSamples: string[] = [];
const closeCodes: Record<string, number> = {};
const errors: Record<string, number> = {};
let unexpectedCloses = 0;
let closing = false;
/** Sockets the storm dropped on purpose: their close is not unexpected. */
const dropped = new WeakSet<WebSocket>();
/** Receive times (epoch ms) of the first and last result since the last reset. */
let firstAt = 0;
let lastAt = 0;
/** Presence frames since the last reset: SNAPSHOTs, CHANGES frames, and the JOINED / LEFT changes in them. */
const presence = { snapshots: 0, frames: 0, joined: 0, left: 0 };

function recordLatency(publishedAtMicros: number): void {
  const now = nowMs();
  if (firstAt === 0) firstAt = now;
  lastAt = now;
  hist.record(now - publishedAtMicros / 1000);
}

/** Where a result's `R-<seq>-<µs>` starts: in `roomType` (prices) or `title` (notifications). */
const MARK = Buffer.from('":"R-');
const PONG = '{"type":"pong"}';

function send(message: unknown): void {
  process.send?.(message);
}

function countError(key: string): void {
  errors[key] = (errors[key] ?? 0) + 1;
}

function onMessage(conn: Conn, data: Buffer): void {
  const at = data.indexOf(MARK);
  if (at >= 0 && !plan!.verify) {
    const parsed = parseRoomType(data, at + 3);
    if (parsed) {
      recordLatency(parsed[1]);
      if (conn.receivedAt === 0) conn.receivedAt = nowMs();
      conn.received++;
      received++;
      return;
    }
  }
  let message: {
    type?: string;
    payload?: { data?: { priceUpdated?: { roomType?: string }; presence?: { kind?: string; changes?: { change?: string }[] } }; errors?: { path?: unknown[]; extensions?: { code?: string } }[] };
  };
  try {
    message = JSON.parse(data.toString()) as typeof message;
  } catch {
    countError('invalid_json');
    return;
  }
  switch (message.type) {
    case 'next': {
      const update = message.payload?.data?.presence;
      if (update) {
        if (update.kind === 'SNAPSHOT') presence.snapshots++;
        else presence.frames++;
        for (const change of update.changes ?? []) {
          if (change.change === 'JOINED') presence.joined++;
          else presence.left++;
        }
        return;
      }
      const roomType = message.payload?.data?.priceUpdated?.roomType;
      const match = /^R-(\d+)-(\d+)$/.exec(roomType ?? '');
      if (!match) {
        countError('next_without_roomType');
        if (mismatchSamples.length < 5) mismatchSamples.push(data.toString().slice(0, 400));
        mismatches++;
        return;
      }
      const seq = Number(match[1]);
      const micros = Number(match[2]);
      recordLatency(micros);
      if (conn.receivedAt === 0) conn.receivedAt = nowMs();
      conn.received++;
      received++;
      if (plan!.verify) {
        checked++;
        const hotelId = `${plan!.hotelPrefix}${conn.hotel}`;
        const expected = expectedResult(conn.variant, conn.admin, { id: eventIdOf(seq), occurredAt: occurredAtOf(micros), data: priceData(hotelId, seq, micros) });
        const gotErrors = (message.payload?.errors ?? []).map((error) => `${error.extensions?.code}:${JSON.stringify(error.path)}`).sort();
        const wantErrors = expected.forbidden.map((path) => `FORBIDDEN:${JSON.stringify(path)}`).sort();
        const ok = canonical(message.payload?.data) === canonical(expected.data) && JSON.stringify(gotErrors) === JSON.stringify(wantErrors);
        if (!ok) {
          mismatches++;
          if (mismatchSamples.length < 5) mismatchSamples.push(`${conn.variant.name}/${conn.admin ? 'admin' : 'user'}: got ${data.toString().slice(0, 600)} want ${JSON.stringify(expected)}`);
        }
      }
      return;
    }
    case 'ping':
      conn.socket?.send(PONG);
      return;
    case 'pong':
    case 'connection_ack':
      return;
    case 'error':
      countError(`subscribe_error:${JSON.stringify(message.payload).slice(0, 160)}`);
      return;
    case 'complete':
      countError('complete');
      return;
    default:
      countError(`type:${message.type}`);
  }
}

async function token(secret: Uint8Array, sub: string, admin: boolean): Promise<string> {
  return new SignJWT({ roles: admin ? ['user', 'admin'] : ['user'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 6 * 3600)
    .sign(secret);
}

function openOne(p: OpenPlan, index: number, secret: Uint8Array): Promise<boolean> {
  const variant = variantByName.get(p.variants[index % p.variants.length]!)!;
  const admin = p.mixedRoles && Math.floor(index / p.variants.length) % 2 === 1;
  const conn: Conn = { index, jwt: '', socket: undefined, hotel: index % p.hotels, variant, admin, received: 0, subscribed: false, closedCode: undefined, receivedAt: 0 };
  conns.push(conn);
  return token(secret, `${p.userPrefix}${index}`, admin).then((jwt) => {
    conn.jwt = jwt;
    return connectOne(p, conn);
  });
}

/** Opens `conn`'s socket with its token, subscribes and resolves once the subscribes are sent. */
function connectOne(p: OpenPlan, conn: Conn): Promise<boolean> {
  const { index, variant, jwt } = conn;
  const extra = (p.extra ?? []).map((e) => ({ variant: variantByName.get(e.variant)!, room: `${e.roomPrefix}${index % e.rooms}` }));
  const variablesOf = (v: Variant, room: string) => (v.ownRoom ? {} : v.conversation || v.presence ? { c: room } : { h: room });
  return new Promise<boolean>((resolve) => {
    let settled = false;
    const settle = (ok: boolean, reason?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!ok && reason) countError(reason);
      resolve(ok);
    };
    const localAddress = p.localAddresses.length > 0 ? p.localAddresses[index % p.localAddresses.length] : undefined;
    const socket = new WebSocket(p.url, 'graphql-transport-ws', { perMessageDeflate: false, skipUTF8Validation: !p.verify, ...(localAddress ? { localAddress } : {}) });
    conn.socket = socket;
    const timer = setTimeout(() => {
      settle(false, 'open_timeout');
      socket.terminate();
    }, p.connectTimeoutMs);
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${jwt}` } })));
    let acked = false;
    socket.on('message', (data: Buffer) => {
      if (conn.socket !== socket) return; // dropped by the storm
      if (!acked) {
        if (data.includes('"connection_ack"')) {
          acked = true;
          const room = `${p.hotelPrefix}${conn.hotel}`;
          socket.send(JSON.stringify({ id: `s${index}`, type: 'subscribe', payload: { query: variant.query, variables: variablesOf(variant, room) } }));
          extra.forEach((e, k) => socket.send(JSON.stringify({ id: `s${index}-${k}`, type: 'subscribe', payload: { query: e.variant.query, variables: variablesOf(e.variant, e.room) } })));
          conn.subscribed = true;
          settle(true);
          return;
        }
      }
      onMessage(conn, data);
    });
    socket.on('error', (error: Error & { code?: string }) => settle(false, `error:${error.code ?? error.message.slice(0, 80)}`));
    socket.on('close', (code: number) => {
      if (!dropped.has(socket)) {
        conn.closedCode = code;
        closeCodes[code] = (closeCodes[code] ?? 0) + 1;
        if (!closing && settled) unexpectedCloses++;
      }
      settle(false, `closed:${code}`);
    });
  });
}

async function open(p: OpenPlan): Promise<void> {
  plan = p;
  const secret = new TextEncoder().encode(p.secret);
  const started = Date.now();
  let next = p.start;
  const end = p.start + p.count;
  let ok = 0;
  let failed = 0;
  const progress = setInterval(() => send({ evt: 'progress', ok, failed }), 1_000);
  const worker = async () => {
    while (next < end && Date.now() - started < p.deadlineMs && failed < p.maxFailures) {
      const index = next++;
      if (await openOne(p, index, secret)) ok++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(p.concurrency, p.count) }, worker));
  clearInterval(progress);
  send({ evt: 'opened', ok, failed, errors, ms: Date.now() - started });
}

/**
 * The storm: terminates every socket in one synchronous loop (the server sees them all reset at
 * once), then reopens them all, `concurrency` handshakes in flight, each with its own token again.
 */
async function storm(concurrency: number): Promise<void> {
  const p = plan!;
  const errorsBefore = { ...errors };
  const droppedAt = nowMs();
  for (const conn of conns) {
    conn.receivedAt = 0;
    conn.subscribed = false;
    if (conn.socket) {
      dropped.add(conn.socket);
      conn.socket.terminate();
    }
  }
  let next = 0;
  let ok = 0;
  let failed = 0;
  const worker = async () => {
    while (next < conns.length) {
      const conn = conns[next++]!;
      if (await connectOne(p, conn)) ok++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, conns.length) }, worker));
  const stormErrors: Record<string, number> = {};
  for (const [key, value] of Object.entries(errors)) if (value > (errorsBefore[key] ?? 0)) stormErrors[key] = value - (errorsBefore[key] ?? 0);
  send({ evt: 'stormed', ok, failed, errors: stormErrors, droppedAt, resubscribedAt: nowMs() });
}

/** `join`: one more subscription on every subscribed connection, all sent in one loop. */
function join(variantName: string, rooms: number, roomPrefix: string, id: string): number {
  const variant = variantByName.get(variantName)!;
  const room = (index: number) => `${roomPrefix}${index % rooms}`;
  const payload = (index: number) => ({ query: variant.query, variables: variant.ownRoom ? {} : variant.conversation || variant.presence ? { c: room(index) } : { h: room(index) } });
  let sent = 0;
  for (const conn of conns) {
    if (!conn.subscribed || conn.socket?.readyState !== WebSocket.OPEN) continue;
    conn.socket.send(JSON.stringify({ id: `${id}${conn.index}`, type: 'subscribe', payload: payload(conn.index) }));
    sent++;
  }
  return sent;
}

/** `leave`: completes what `join` subscribed, all in one loop. */
function leave(id: string): number {
  let sent = 0;
  for (const conn of conns) {
    if (!conn.subscribed || conn.socket?.readyState !== WebSocket.OPEN) continue;
    conn.socket.send(JSON.stringify({ id: `${id}${conn.index}`, type: 'complete' }));
    sent++;
  }
  return sent;
}

process.on('message', (message: Command) => {
  switch (message.cmd) {
    case 'open':
      void open(message.plan);
      return;
    case 'count':
      send({ evt: 'count', received, lastAt, firstAt });
      return;
    case 'reset':
      firstAt = 0;
      lastAt = 0;
      hist = new Histogram();
      received = 0;
      mismatches = 0;
      checked = 0;
      mismatchSamples.length = 0;
      Object.assign(presence, { snapshots: 0, frames: 0, joined: 0, left: 0 });
      for (const conn of conns) conn.received = 0;
      return;
    case 'join':
      send({ evt: 'joined', sent: join(message.variant, message.rooms, message.roomPrefix, message.id) });
      return;
    case 'leave':
      send({ evt: 'left', sent: leave(message.id) });
      return;
    case 'presence':
      send({ evt: 'presence', ...presence });
      return;
    case 'report': {
      let missing = 0;
      let extra = 0;
      let open = 0;
      for (const conn of conns) {
        if (conn.socket?.readyState === WebSocket.OPEN) open++;
        if (!conn.subscribed) continue;
        const want = message.expectedByHotel[`${plan!.hotelPrefix}${conn.hotel}`] ?? 0;
        if (conn.received < want) missing += want - conn.received;
        else extra += conn.received - want;
      }
      send({ evt: 'report', received, firstAt, lastAt, missing, extra, open, latency: hist.toJSON(), mismatches, checked, mismatchSamples, closeCodes, unexpectedCloses, errors, memory: process.memoryUsage().rss });
      return;
    }
    case 'storm':
      void storm(message.concurrency);
      return;
    case 'pending': {
      // user indexes whose subscribes are sent and that have not received since the storm began
      const users: number[] = [];
      let waiting = 0;
      let recovered = 0;
      for (const conn of conns) {
        if (conn.receivedAt > 0) recovered++;
        else if (conn.subscribed) users.push(conn.index);
        else waiting++;
      }
      send({ evt: 'pending', users, waiting, recovered });
      return;
    }
    case 'recovery': {
      const recovery = new Histogram();
      let lastAt = 0;
      for (const conn of conns) {
        if (conn.receivedAt === 0) continue;
        recovery.record(conn.receivedAt - message.since);
        lastAt = Math.max(lastAt, conn.receivedAt);
      }
      send({ evt: 'recovery', recovery: recovery.toJSON(), lastAt });
      return;
    }
    case 'close':
      closing = true;
      for (const conn of conns) conn.socket?.terminate();
      setTimeout(() => process.exit(0), 200);
      return;
  }
});

// Never outlive the orchestrator.
process.on('disconnect', () => process.exit(0));
send({ evt: 'ready' });
