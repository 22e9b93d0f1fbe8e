/**
 * The baseline floor: the least a server can do and still deliver the same events to the same
 * clients. A raw `ws` server speaking the subset of graphql-transport-ws the load generator uses
 * (connection_init → connection_ack with an HS256 JWT checked by one HMAC, subscribe, complete,
 * ping/pong), fed from the same Redis channels as the gateway (`{REDIS_PREFIX}price:{hotelId}`,
 * SUBSCRIBEd once per topic while it has subscribers). Per event it parses the envelope once,
 * serializes the payload once per (selection set, admin) group and sends every subscribed socket
 * its id prefix concatenated with that one serialized payload. No schema, no validation of
 * events, no per-user quotas, no rate limits, no metrics.
 *
 * Also: GET /stats (connections, subscriptions, topics), GET /ready, and POST /graphql that takes
 * `variables.input` of a publishPrice mutation from a `service` token and PUBLISHes it (for the
 * cross-instance scenario).
 *
 * Rooms: a hotel's prices, a conversation's messages (no membership check), the subscriber's own
 * notifications and bookings (named by its token). A connection may join several at once, one per
 * `subscribe` (the session scenario: its user, bookings, hotel and conversation rooms).
 *
 * With AMQP_URL it also consumes AMQP_QUEUE (declared by the benchmark) the least a hand-written
 * consumer can: JSON.parse each `notification.created` message, PUBLISH a notification envelope
 * on the user's channel, ack once Redis answered. No validation, no de-duplication, no
 * dead-lettering, no metrics (the amqp scenario's baseline).
 *
 * Env: PORT, HOST, REDIS_URL, REDIS_PREFIX, JWT_SECRET; AMQP_URL, AMQP_QUEUE, AMQP_PREFETCH.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';
import { conversationTopic, expectedResult, inboxTopic, variantByQuery, type PriceData, type Variant } from './lib/common.js';

const port = Number(process.env['PORT'] ?? 4100);
const host = process.env['HOST'] ?? '127.0.0.1';
const prefix = process.env['REDIS_PREFIX'] ?? 'tidings:';
const secret = Buffer.from(process.env['JWT_SECRET'] ?? '', 'utf8');
const redisUrl = process.env['REDIS_URL'];
if (!redisUrl || secret.length < 32) {
  process.stderr.write('floor-server needs REDIS_URL and JWT_SECRET\n');
  process.exit(78);
}

interface Claims {
  sub: string;
  roles: string[];
}

/** HS256 check with one HMAC; returns the claims or undefined. */
function verify(token: string | undefined): Claims | undefined {
  if (!token) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2]!, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()) as { alg?: string };
    if (header.alg !== 'HS256') return undefined;
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as { sub?: string; roles?: string[]; exp?: number };
    if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return undefined;
    return { sub: claims.sub, roles: Array.isArray(claims.roles) ? claims.roles : [] };
  } catch {
    return undefined;
  }
}

interface Sub {
  readonly socket: WebSocket;
  /** `{"id":"<id>","type":"next","payload":` */
  readonly head: string;
  readonly id: string;
  readonly topic: string;
  readonly group: string;
}

interface Group {
  readonly variant: Variant;
  readonly admin: boolean;
  readonly subs: Set<Sub>;
}

/** topic → group key (variant + admin) → subscribers */
const topics = new Map<string, Map<string, Group>>();
let subscriptionCount = 0;
let connectionCount = 0;

const redis = new Redis(redisUrl);
const subscriber = new Redis(redisUrl);
redis.on('error', () => undefined);
subscriber.on('error', () => undefined);

subscriber.on('messageBuffer', (channelBuffer: Buffer, messageBuffer: Buffer) => {
  const topic = channelBuffer.toString().slice(prefix.length);
  const groups = topics.get(topic);
  if (!groups) return;
  let event: { id: string; type: string; occurredAt: string; data: PriceData };
  try {
    event = JSON.parse(messageBuffer.toString()) as typeof event;
  } catch {
    return;
  }
  if (event.type === 'newMessage') {
    const data = event.data as unknown as { messageId: string; text: string };
    const tail = `${JSON.stringify({ data: { newMessage: { messageId: data.messageId, text: data.text, occurredAt: event.occurredAt } } })}}`;
    for (const group of groups.values()) for (const sub of group.subs) sub.socket.send(sub.head + tail);
    return;
  }
  if (event.type === 'notificationCreated') {
    // One subscriber per room: serialized once, as the selection of INBOX asks.
    const data = event.data as unknown as { notificationId: string; title: string };
    const tail = `${JSON.stringify({ data: { notificationCreated: { notificationId: data.notificationId, title: data.title, occurredAt: event.occurredAt } } })}}`;
    for (const group of groups.values()) for (const sub of group.subs) sub.socket.send(sub.head + tail);
    return;
  }
  if (event.type === 'bookingUpdated') {
    // A user's bookings room: the selection of BOOKINGS (no totalPrice, so no per-field rule).
    const data = event.data as unknown as { bookingId: string; status: string };
    const tail = `${JSON.stringify({ data: { bookingUpdated: { bookingId: data.bookingId, status: data.status, occurredAt: event.occurredAt } } })}}`;
    for (const group of groups.values()) for (const sub of group.subs) sub.socket.send(sub.head + tail);
    return;
  }
  if (event.type !== 'priceUpdated') return;
  for (const group of groups.values()) {
    const { data, forbidden } = expectedResult(group.variant, group.admin, event);
    const payload: Record<string, unknown> = { data };
    if (forbidden.length > 0) payload['errors'] = forbidden.map((path) => ({ message: 'Not authorized', path, extensions: { code: 'FORBIDDEN' } }));
    const tail = `${JSON.stringify(payload)}}`;
    for (const sub of group.subs) sub.socket.send(sub.head + tail);
  }
});

function addSub(sub: Sub, variant: Variant, admin: boolean): void {
  let groups = topics.get(sub.topic);
  if (!groups) {
    groups = new Map();
    topics.set(sub.topic, groups);
    void subscriber.subscribe(prefix + sub.topic);
  }
  let group = groups.get(sub.group);
  if (!group) {
    group = { variant, admin, subs: new Set() };
    groups.set(sub.group, group);
  }
  group.subs.add(sub);
  subscriptionCount++;
}

function removeSub(sub: Sub): void {
  const groups = topics.get(sub.topic);
  const group = groups?.get(sub.group);
  if (!groups || !group || !group.subs.delete(sub)) return;
  subscriptionCount--;
  if (group.subs.size === 0) groups.delete(sub.group);
  if (groups.size === 0) {
    topics.delete(sub.topic);
    void subscriber.unsubscribe(prefix + sub.topic);
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

const server = createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/stats') {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ connections: connectionCount, subscriptions: subscriptionCount, topics: topics.size }));
    return;
  }
  if (request.method === 'GET' && (request.url === '/ready' || request.url === '/health')) {
    response.end(subscriber.status === 'ready' ? 'ok' : 'not ready');
    return;
  }
  if (request.method === 'POST' && request.url === '/graphql') {
    const claims = verify(request.headers.authorization?.replace(/^Bearer /, ''));
    void readBody(request).then(async (body) => {
      response.setHeader('content-type', 'application/json');
      if (!claims?.roles.includes('service')) {
        response.statusCode = 401;
        response.end('{"errors":[{"message":"Unauthenticated"}]}');
        return;
      }
      const input = (JSON.parse(body) as { variables: { input: PriceData & { occurredAt?: string } } }).variables.input;
      const { occurredAt, ...data } = input;
      const id = randomUUID();
      await redis.publish(`${prefix}price:${data.hotelId}`, JSON.stringify({ id, type: 'priceUpdated', version: 1, occurredAt: occurredAt ?? new Date().toISOString(), data }));
      response.end(`{"data":{"publishPrice":{"eventId":"${id}"}}}`);
    });
    return;
  }
  response.statusCode = 404;
  response.end();
});

const wss = new WebSocketServer({
  server,
  path: '/graphql',
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has('graphql-transport-ws') ? 'graphql-transport-ws' : false),
});


wss.on('connection', (socket) => {
  connectionCount++;
  let claims: Claims | undefined;
  const subs = new Map<string, Sub>();
  // Keep-alive like the gateway's: a ping every 12 s per socket, terminated when the last one went unanswered.
  let alive = true;
  socket.on('pong', () => {
    alive = true;
  });
  const pinger = setInterval(() => {
    if (!alive) return socket.terminate();
    alive = false;
    socket.ping();
  }, 12_000);
  const initTimer = setTimeout(() => claims === undefined && socket.close(4408, 'Connection initialisation timeout'), 3_000);
  socket.on('message', (raw) => {
    let message: { type?: string; id?: string; payload?: { authorization?: string; query?: string; variables?: { h?: string } } };
    try {
      message = JSON.parse(raw.toString()) as typeof message;
    } catch {
      socket.close(4400, 'Invalid message');
      return;
    }
    switch (message.type) {
      case 'connection_init': {
        if (claims) return socket.close(4429, 'Too many initialisation requests');
        claims = verify(message.payload?.authorization?.replace(/^Bearer /, ''));
        if (!claims) return socket.close(4403, 'Forbidden');
        clearTimeout(initTimer);
        socket.send('{"type":"connection_ack"}');
        return;
      }
      case 'subscribe': {
        if (!claims) return socket.close(4401, 'Unauthorized');
        const id = message.id ?? '';
        if (subs.has(id)) return socket.close(4409, `Subscriber for ${id} already exists`);
        const variant = variantByQuery.get(message.payload?.query ?? '');
        const conversationId = (message.payload?.variables as { c?: unknown } | undefined)?.c;
        if (variant?.conversation && typeof conversationId === 'string' && /^[A-Za-z0-9_.@-]{1,128}$/.test(conversationId)) {
          // A conversation's room (no membership check: the least a gateway could do).
          const sub: Sub = { socket, id, head: `{"id":${JSON.stringify(id)},"type":"next","payload":`, topic: conversationTopic(conversationId), group: variant.name };
          subs.set(id, sub);
          addSub(sub, variant, false);
          return;
        }
        if (variant?.ownRoom) {
          // The subscriber's own room (notifications or bookings), named by its token.
          const sub: Sub = { socket, id, head: `{"id":${JSON.stringify(id)},"type":"next","payload":`, topic: (variant.ownTopic ?? inboxTopic)(claims.sub), group: variant.name };
          subs.set(id, sub);
          addSub(sub, variant, false);
          return;
        }
        const hotelId = message.payload?.variables?.h;
        if (!variant || typeof hotelId !== 'string' || !/^[A-Za-z0-9_.@-]{1,128}$/.test(hotelId)) {
          socket.send(JSON.stringify({ id, type: 'error', payload: [{ message: 'unsupported operation' }] }));
          return;
        }
        const admin = claims.roles.includes('admin');
        const sub: Sub = { socket, id, head: `{"id":${JSON.stringify(id)},"type":"next","payload":`, topic: `price:${hotelId}`, group: `${variant.name}/${admin}` };
        subs.set(id, sub);
        addSub(sub, variant, admin);
        return;
      }
      case 'complete': {
        const sub = subs.get(message.id ?? '');
        if (sub) {
          subs.delete(sub.id);
          removeSub(sub);
        }
        return;
      }
      case 'ping':
        socket.send('{"type":"pong"}');
        return;
      case 'pong':
        return;
      default:
        socket.close(4400, 'Invalid message');
    }
  });
  socket.on('close', () => {
    connectionCount--;
    clearTimeout(initTimer);
    clearInterval(pinger);
    for (const sub of subs.values()) removeSub(sub);
    subs.clear();
  });
  socket.on('error', () => undefined);
});

server.listen(port, host, () => process.stdout.write(`floor listening on ${host}:${port}\n`));

const amqpUrl = process.env['AMQP_URL'];
if (amqpUrl) {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.prefetch(Number(process.env['AMQP_PREFETCH'] ?? 50));
  await channel.consume(process.env['AMQP_QUEUE'] ?? 'tidings.ingress', (message) => {
    if (!message) return;
    let body: { notificationId: string; userId: string; title: string; message?: string; timestamp: string };
    try {
      body = JSON.parse(message.content.toString()) as typeof body;
    } catch {
      channel.ack(message);
      return;
    }
    const data = { notificationId: body.notificationId, userId: body.userId, kind: 'SYSTEM', title: body.title, body: body.message ?? '', link: null };
    const event = JSON.stringify({ id: randomUUID(), type: 'notificationCreated', version: 1, occurredAt: body.timestamp, data });
    redis.publish(`${prefix}user:${body.userId}:notification`, event).then(
      () => channel.ack(message),
      () => channel.nack(message, false, true),
    );
  });
}

const stop = () => {
  for (const socket of wss.clients) socket.terminate();
  redis.disconnect();
  subscriber.disconnect();
  server.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
// Dies with the orchestrator: it holds our stdin.
process.stdin.on('end', stop);
process.stdin.resume();
