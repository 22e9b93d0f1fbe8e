import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startGateway, tokenFor, type TestGateway } from './support/gateway.js';
import { counterValue } from './support/metrics.js';

const TYPENAME = JSON.stringify({ query: '{ __typename }' });
const TYPENAME_ANSWER = { data: { __typename: 'Query' } };

interface Answer {
  status: number;
  body: string;
}

/** Every operation needs a caller; any signed-in user will do. */
const bearer = async () => `Bearer ${await tokenFor('alice')}`;

/**
 * POSTs `chunks` to the gateway with `Transfer-Encoding: chunked` (no Content-Length), one
 * `write()` per chunk: the first straight away, each next one `pauseMs` later. With `end: false`
 * the request is never ended: the answer must come while the client is still sending.
 */
async function postChunked(gateway: TestGateway, chunks: string[], options: { pauseMs?: number; end?: boolean } = {}): Promise<Answer> {
  const { pauseMs = 30, end = true } = options;
  const authorization = await bearer();
  return new Promise<Answer>((resolve, reject) => {
    const url = new URL(gateway.httpUrl);
    const outgoing = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', 'transfer-encoding': 'chunked', authorization },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (text: string) => (body += text));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        response.on('error', reject);
      },
    );
    // Once the gateway has answered and dropped the connection, further writes may fail: the
    // answer is what the test looks at.
    let answered = false;
    outgoing.on('response', () => (answered = true));
    outgoing.on('error', (error) => {
      if (!answered) reject(error);
    });
    void (async () => {
      for (const [index, chunk] of chunks.entries()) {
        if (index > 0) await delay(pauseMs);
        if (answered || outgoing.destroyed) return;
        outgoing.write(chunk);
      }
      if (end) outgoing.end();
    })();
  });
}

/** Sends `raw` (a whole HTTP/1.1 request, as curl would) over a plain TCP socket; resolves with everything the server sent back. */
function sendRaw(gateway: TestGateway, raw: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const url = new URL(gateway.httpUrl);
    const socket = connect(Number(url.port), url.hostname, () => socket.write(raw));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => (received += text));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
  });
}

/** Splits `text` into `count` pieces of (nearly) equal length. */
function split(text: string, count: number): string[] {
  const size = Math.ceil(text.length / count);
  return Array.from({ length: count }, (_, index) => text.slice(index * size, (index + 1) * size)).filter((piece) => piece.length > 0);
}

function expectRefused(answer: Answer, limit: number) {
  expect(answer.status).toBe(413);
  expect(JSON.parse(answer.body)).toEqual({
    errors: [{ message: `Request body larger than ${limit} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE', limit: 'http_body_bytes' } }],
  });
}

// DEV_TOKENS=true puts an asynchronous onRequest hook (GET /dev/token) in front of Yoga's body
// parsing, so Yoga reads the body a few ticks after the request arrived, as any asynchronous
// plugin does: the situation in which a body guard that starts the stream flowing loses chunks.
describe('HTTP body limit (HTTP_MAX_BODY_BYTES) and chunked bodies', () => {
  it('passes a chunked body written in several delayed chunks whole to GraphQL', async () => {
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: '2048', DEV_TOKENS: 'true' });
    const answer = await postChunked(gateway, split(TYPENAME, 4), { pauseMs: 40 });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual(TYPENAME_ANSWER);
  });

  it('does not lose a first chunk written before GraphQL reads the body', async () => {
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: '2048', DEV_TOKENS: 'true' });
    // The first 10 bytes go out with the headers; the rest follows later.
    const answer = await postChunked(gateway, [TYPENAME.slice(0, 10), TYPENAME.slice(10)], { pauseMs: 100 });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual(TYPENAME_ANSWER);
  });

  it('accepts a chunked body sent in one go with the headers, as curl sends it', async () => {
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: '2048', DEV_TOKENS: 'true' });
    const url = new URL(gateway.httpUrl);
    const chunked = split(TYPENAME, 3)
      .map((piece) => `${Buffer.byteLength(piece).toString(16)}\r\n${piece}\r\n`)
      .join('');
    const received = await sendRaw(
      gateway,
      `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nAccept: application/json\r\n` +
        `Authorization: ${await bearer()}\r\n` +
        `Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}0\r\n\r\n`,
    );
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    const body = received.slice(received.indexOf('\r\n\r\n') + 4);
    // The answer itself may be framed as chunked too: its JSON is the single line carrying `{`.
    const json = body.split('\r\n').find((line) => line.startsWith('{'));
    expect(JSON.parse(json ?? 'null')).toEqual(TYPENAME_ANSWER);
  });

  it('accepts a chunked body of exactly the limit', async () => {
    const padded = JSON.stringify({ query: '{ __typename }', variables: { padding: '' } });
    const limit = 300;
    const exact = padded.replace('"padding":""', `"padding":"${'x'.repeat(limit - padded.length)}"`);
    expect(Buffer.byteLength(exact)).toBe(limit);
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: String(limit), DEV_TOKENS: 'true' });
    const answer = await postChunked(gateway, split(exact, 5), { pauseMs: 10 });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual(TYPENAME_ANSWER);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'http_body_bytes' })).toBe(0);
  });

  it('answers an empty chunked body as it answers an empty declared one', async () => {
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: '2048', DEV_TOKENS: 'true' });
    const declared = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', authorization: await bearer() },
      body: '',
    });
    const chunked = await postChunked(gateway, []);
    expect(chunked.status).toBe(declared.status);
    expect(JSON.parse(chunked.body)).toEqual(await declared.json());
  });

  it('refuses a chunked body with 413 as soon as it passes the limit, before the client has finished sending', async () => {
    const limit = 2048;
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: String(limit), DEV_TOKENS: 'true' });
    const big = JSON.stringify({ query: '{ __typename }', variables: { padding: 'x'.repeat(limit * 4) } });
    // Never ended: only refusing at the limit can answer it.
    const answer = await postChunked(gateway, split(big, 16), { pauseMs: 10, end: false });
    expectRefused(answer, limit);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'http_body_bytes' })).toBe(1);

    // The gateway goes on serving.
    const after = await postChunked(gateway, split(TYPENAME, 2));
    expect(JSON.parse(after.body)).toEqual(TYPENAME_ANSWER);
  });

  it('lets a client abandon a chunked body halfway, and goes on serving', async () => {
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: '2048', DEV_TOKENS: 'true' });
    const url = new URL(gateway.httpUrl);
    const outgoing = request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', authorization: await bearer() },
    });
    const failed = new Promise<void>((resolve) => outgoing.on('error', () => resolve()));
    outgoing.on('response', () => expect.fail('an abandoned request must not be answered'));
    outgoing.write(TYPENAME.slice(0, 10));
    await delay(50);
    outgoing.destroy(new Error('client went away'));
    await failed;

    const after = await postChunked(gateway, split(TYPENAME, 3));
    expect(JSON.parse(after.body)).toEqual(TYPENAME_ANSWER);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'http_body_bytes' })).toBe(0);
  });

  it('still refuses a declared Content-Length over the limit up front, and serves a normal fetch POST', async () => {
    const limit = 2048;
    const gateway = await startGateway({ HTTP_MAX_BODY_BYTES: String(limit), DEV_TOKENS: 'true' });
    const big = JSON.stringify({ query: '{ __typename }', variables: { padding: 'x'.repeat(limit * 2) } });
    const declared = await fetch(gateway.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: await bearer() }, body: big });
    expectRefused({ status: declared.status, body: await declared.text() }, limit);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'http_body_bytes' })).toBe(1);

    const small = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', authorization: await bearer() },
      body: TYPENAME,
    });
    expect(small.status).toBe(200);
    expect(await small.json()).toEqual(TYPENAME_ANSWER);
    expect(await counterValue(gateway.app, 'limitTrips', { limit: 'http_body_bytes' })).toBe(1);
  });

  it('still serves GET requests: GraphQL over GET and the web app', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'tidings-web-app-'));
    onTestFinished(() => rmSync(directory, { recursive: true, force: true }));
    writeFileSync(join(directory, 'index.html'), '<!doctype html><title>Tidings test app</title>');
    const gateway = await startGateway({ WEB_APP: 'true', WEB_APP_DIR: directory });

    const page = await fetch(new URL('/app/', gateway.httpUrl));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Tidings test app');

    const query = new URL(gateway.httpUrl);
    query.searchParams.set('query', '{ __typename }');
    const answer = await fetch(query, { headers: { accept: 'application/graphql-response+json, application/json', authorization: await bearer() } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual(TYPENAME_ANSWER);
  });
});
