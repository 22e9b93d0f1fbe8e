import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { ADD_MEMBERS, NOTIFICATION_CREATED, PUBLISH_NOTIFICATION, SET_TYPING, USER_TYPING } from './support/operations.js';
import { randomPrefix, startRedis, type TestRedis } from './support/redis-server.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

/**
 * OpenTelemetry tracing against a real OTLP/HTTP receiver (the JSON encoding the exporter sends by
 * default): a publish continues the caller's trace, and each instance's delivery span continues
 * the publish's, across two instances on Redis.
 */

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: string | number; boolValue?: boolean } }>;
  status?: { code?: number };
}
interface ReceivedSpan {
  readonly instance: string;
  readonly span: OtlpSpan;
}

let receiver: Server;
let endpoint: string;
const received: ReceivedSpan[] = [];
let redis: TestRedis;

beforeAll(async () => {
  receiver = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      const payload = JSON.parse(body) as {
        resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
      };
      for (const resourceSpans of payload.resourceSpans) {
        const instance = resourceSpans.resource.attributes.find((attribute) => attribute.key === 'service.instance.id')?.value.stringValue ?? '?';
        for (const scope of resourceSpans.scopeSpans) for (const span of scope.spans) received.push({ instance, span });
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  redis = await startRedis();
});

afterAll(async () => {
  receiver?.close();
  await redis?.stop();
});

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((entry) => entry.key === key)?.value;
  return value?.stringValue ?? (value?.intValue !== undefined ? Number(value.intValue) : value?.boolValue);
};

describe('tracing', () => {
  it('continues the caller\'s trace from the publish to the delivery on every instance', async () => {
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '50' };
    const a = await startGateway({ ...env, INSTANCE_ID: 'trace-a' });
    const b = await startGateway({ ...env, INSTANCE_ID: 'trace-b' });
    for (const gateway of [a, b]) {
      const notifications = record(connectWs(gateway.wsUrl, await tokenFor('gina')).client, NOTIFICATION_CREATED);
      await gateway.waitForSubscribers(topics.userNotifications('gina'));
      void notifications;
    }
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const response = await fetch(a.httpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${await tokenFor('notification-service', ['service'])}`,
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
      body: JSON.stringify({ query: PUBLISH_NOTIFICATION, variables: { input: { notificationId: 'n-1', userId: 'gina', kind: 'SYSTEM', title: 'Hello' } } }),
    });
    expect(response.status).toBe(200);

    const ofTrace = () => received.filter(({ span }) => span.traceId === traceId);
    await waitUntil(() => ofTrace().filter(({ span }) => span.name === 'deliver').length >= 2 && ofTrace().some(({ span }) => span.name.startsWith('publish')), 'the publish and two delivery spans', 10_000);
    const publish = ofTrace().find(({ span }) => span.name === 'publish notificationCreated');
    expect(publish?.instance).toBe('trace-a');
    expect(publish?.span.parentSpanId).toBe('00f067aa0ba902b7');
    expect(attribute(publish!.span, 'tidings.source')).toBe('mutation');
    const deliveries = ofTrace().filter(({ span }) => span.name === 'deliver');
    expect(deliveries.map(({ instance }) => instance).sort()).toEqual(['trace-a', 'trace-b']);
    for (const { span } of deliveries) {
      expect(span.parentSpanId).toBe(publish?.span.spanId);
      expect(attribute(span, 'tidings.event.type')).toBe('notificationCreated');
      expect(attribute(span, 'tidings.subscribers')).toBe(1);
      expect(attribute(span, 'tidings.subscribers.reached')).toBe(1);
      expect(attribute(span, 'tidings.subscribers.filtered')).toBe(0);
      expect(attribute(span, 'messaging.destination.name')).toMatch(/user:gina:notification$/);
    }
  });

  it('counts on the delivery span the subscribers an event reached and those it was filtered for', async () => {
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: randomPrefix(), OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '50', INSTANCE_ID: 'trace-typing' });
    await gateway.publish(ADD_MEMBERS, { conversationId: 'c-trace', userIds: ['gina', 'hugo'] });
    const ginaToken = await tokenFor('gina');
    const hugoTyping = record(connectWs(gateway.wsUrl, await tokenFor('hugo')).client, USER_TYPING, { conversationId: 'c-trace' });
    record(connectWs(gateway.wsUrl, ginaToken).client, USER_TYPING, { conversationId: 'c-trace' });
    await gateway.waitForSubscribers(topics.conversationTyping('c-trace'), 2);
    const traceId = '1af7651916cd43dd8448eb211c80319c';
    const response = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ginaToken}`, traceparent: `00-${traceId}-c7ad6b7169203331-01` },
      body: JSON.stringify({ query: SET_TYPING, variables: { conversationId: 'c-trace', state: 'STARTED' } }),
    });
    expect(response.status).toBe(200);
    await hugoTyping.waitForResults(1);
    await waitUntil(() => received.some(({ span }) => span.traceId === traceId && span.name === 'deliver'), 'the typing delivery span', 10_000);
    const delivery = received.find(({ span }) => span.traceId === traceId && span.name === 'deliver')!.span;
    // Hugo got it; Gina's own typing is not echoed to her.
    expect(attribute(delivery, 'tidings.subscribers')).toBe(2);
    expect(attribute(delivery, 'tidings.subscribers.reached')).toBe(1);
    expect(attribute(delivery, 'tidings.subscribers.filtered')).toBe(1);
  });

  it('adds no span and no envelope field when tracing is off', async () => {
    const prefix = randomPrefix();
    // An endpoint is set, but tracing is switched off: nothing may reach the receiver.
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, INSTANCE_ID: 'trace-off', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'true', OTEL_BSP_SCHEDULE_DELAY: '50' });
    const watcher = redis.client().duplicate();
    const seen: string[] = [];
    watcher.on('pmessage', (_pattern: string, _channel: string, message: string) => seen.push(message));
    await watcher.psubscribe(`${prefix}*`);
    const response = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${await tokenFor('notification-service', ['service'])}`,
        traceparent: '00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      },
      body: JSON.stringify({ query: PUBLISH_NOTIFICATION, variables: { input: { notificationId: 'n-off', userId: 'gina', kind: 'SYSTEM', title: 'Hello' } } }),
    });
    expect(response.status).toBe(200);
    await waitUntil(() => seen.length === 1, 'the event on Redis');
    expect(JSON.parse(seen[0] as string)).not.toHaveProperty('traceparent');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received.filter(({ instance }) => instance === 'trace-off')).toEqual([]);
    watcher.disconnect();
  });

  it('continues a service\'s trace from the envelope it publishes on Redis, and marks a dropped event', async () => {
    const prefix = randomPrefix();
    const gateway = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '50', INSTANCE_ID: 'trace-c' });
    const notifications = record(connectWs(gateway.wsUrl, await tokenFor('hugo')).client, NOTIFICATION_CREATED);
    await gateway.waitForSubscribers(topics.userNotifications('hugo'));
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const envelope = {
      id: 'e-1',
      type: 'notificationCreated',
      version: 1,
      occurredAt: new Date().toISOString(),
      traceparent: `00-${traceId}-b7ad6b7169203331-01`,
      data: { notificationId: 'n-2', userId: 'hugo', kind: 'SYSTEM', title: 'Hi' },
    };
    const publisher = redis.client();
    await publisher.publish(`${prefix}${topics.userNotifications('hugo')}`, JSON.stringify(envelope));
    await publisher.publish(`${prefix}${topics.userNotifications('hugo')}`, JSON.stringify({ ...envelope, id: 'e-2', version: 9 }));
    // A malformed or oversized traceparent is ignored, never a reason to drop the event.
    await publisher.publish(`${prefix}${topics.userNotifications('hugo')}`, JSON.stringify({ ...envelope, id: 'e-3', traceparent: 'x'.repeat(10_000) }));
    await publisher.publish(`${prefix}${topics.userNotifications('hugo')}`, JSON.stringify({ ...envelope, id: 'e-4', traceparent: 42 }));
    await notifications.waitForResults(3);
    expect(notifications.results.map((result) => (result.data?.['notificationCreated'] as { notificationId: string }).notificationId)).toEqual(['n-2', 'n-2', 'n-2']);
    await waitUntil(() => received.filter(({ span }) => span.traceId === traceId && span.name === 'deliver').length >= 2, 'two delivery spans of the service\'s trace', 10_000);
    const [delivered, dropped] = received.filter(({ span }) => span.traceId === traceId && span.name === 'deliver').map(({ span }) => span);
    expect(delivered?.parentSpanId).toBe('b7ad6b7169203331');
    expect(attribute(delivered!, 'tidings.event.id')).toBe('e-1');
    expect(attribute(dropped!, 'tidings.dropped')).toBe('version');
    expect(dropped?.status?.code).toBe(2);
  });
});
