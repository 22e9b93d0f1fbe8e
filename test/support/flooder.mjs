// A misbehaving client in its own process, so its loop does not share the gateway's event loop:
// opens a graphql-ws connection with TOKEN to URL and sends `{ __typename }` subscribes as fast as
// the socket takes them for DURATION_MS, reconnecting whenever the server closes it (at most
// MAX_CONNECTIONS times). Prints one JSON line: messages sent, results received, close codes.
import WebSocket from 'ws';

const url = process.env.URL;
const token = process.env.TOKEN;
const durationMs = Number(process.env.DURATION_MS ?? 3000);
const maxConnections = Number(process.env.MAX_CONNECTIONS ?? 50);
const until = Date.now() + durationMs;
const stats = { sent: 0, results: 0, connections: 0, closes: {} };

function connect() {
  return new Promise((resolve) => {
    stats.connections++;
    const socket = new WebSocket(url, 'graphql-transport-ws');
    let id = 0;
    let open = false;
    const flood = () => {
      if (!open || Date.now() >= until) return;
      // Bounded batches, yielding between them so the socket's writes and closes are seen.
      for (let index = 0; index < 200 && socket.bufferedAmount < 1_000_000; index++) {
        socket.send(`{"id":"${(id++).toString(36)}","type":"subscribe","payload":{"query":"{ __typename }"}}`);
        stats.sent++;
      }
      setImmediate(flood);
    };
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    socket.on('message', (data) => {
      const text = data.toString();
      if (text.includes('"connection_ack"')) {
        open = true;
        flood();
      } else if (text.includes('"next"')) stats.results++;
    });
    socket.on('error', () => undefined);
    socket.on('close', (code) => {
      open = false;
      stats.closes[code] = (stats.closes[code] ?? 0) + 1;
      resolve();
    });
    setTimeout(() => socket.terminate(), Math.max(0, until - Date.now()) + 200).unref();
  });
}

while (Date.now() < until && stats.connections < maxConnections) await connect();
process.stdout.write(`${JSON.stringify(stats)}\n`);
