import { parse, subscribe, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../src/auth/principal.js';
import type { OperationLog } from '../src/logging/logger.js';
import type { GatewayServices, GraphQLContext } from '../src/schema/context.js';
import { buildSchema } from '../src/schema/index.js';
import { deliveryRulesOf } from '../src/schema/delivery.js';
import { topics } from '../src/events/topics.js';
import { BACKENDS, backendEnv } from './support/backends.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { CHAT_RESPONSE, START_CHAT } from './support/operations.js';
import { backendParts, servicesFrom } from './support/services.js';
import { connectWs, record } from './support/ws-client.js';
import { waitUntil } from './support/wait.js';

/**
 * docs/SCHEMA.md and docs/CHANNELS.md: chat responses go only to the session's owner. Ownership is
 * checked when subscribing, and each event is delivered only when its data.userId is the
 * subscriber's: a response a service addressed to another user never reaches this one.
 */
const schema = buildSchema();

const user = (userId: string): Principal => ({ kind: 'user', userId, roles: new Set(['user']), expiresAt: undefined, issuedAt: undefined });

function recordingLog(): OperationLog & { warnings: unknown[][] } {
  const warnings: unknown[][] = [];
  const ignore = () => undefined;
  return { debug: ignore, info: ignore, error: ignore, warn: (...args: unknown[]) => void warnings.push(args), warnings };
}

async function subscribeAs(services: GatewayServices, principal: Principal, sessionId: string, log: OperationLog) {
  const contextValue: GraphQLContext = { principal, services, transport: 'websocket', log };
  const result = await subscribe({ schema, document: parse(CHAT_RESPONSE), variableValues: { sessionId }, contextValue });
  if (!(Symbol.asyncIterator in result)) throw new Error(`subscribe failed: ${JSON.stringify(result)}`);
  return result as AsyncGenerator<ExecutionResult>;
}

async function nextWithin(iterator: AsyncIterator<ExecutionResult>, ms = 5_000): Promise<ExecutionResult> {
  const next = await Promise.race([
    iterator.next(),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('nothing arrived')), ms)),
  ]);
  if (next.done) throw new Error('the stream ended');
  return next.value;
}

const chatResponse = (sessionId: string, userId: string, replyId: string) => ({
  sessionId,
  userId,
  replyId,
  sequence: 1,
  status: 'CHUNK' as const,
  text: `for ${userId}`,
});

it('chatResponse is a shared delivery, which runs its owner filter per member (see the WebSocket test below)', () => {
  expect(deliveryRulesOf(buildSchema()).shareable.has('chatResponse')).toBe(true);
});

describe.each(BACKENDS)('chatResponse on the %s backend', (backend) => {
  it("delivers only the events addressed to the subscriber, dropping others' with a warning", async () => {
    const parts = await backendParts(backend);
    const { waitForUpstream } = parts;
    const services = servicesFrom(parts);
    const session = await services.directory.chatSessions.create('alice');
    const log = recordingLog();
    const stream = await subscribeAs(services, user('alice'), session.id, log);
    const first = nextWithin(stream);
    await waitUntil(() => services.bus.subscriberCount(topics.chatSession(session.id)) === 1, 'subscriber');
    await waitForUpstream(topics.chatSession(session.id));

    // A service mixed up its sessions: mallory's reply published on alice's session channel.
    const misdirected = await services.publisher.publish('chatResponse', chatResponse(session.id, 'mallory', 'reply-mallory'));
    await services.publisher.publish('chatResponse', chatResponse(session.id, 'alice', 'reply-alice'));

    const delivered = await first;
    expect(delivered.errors).toBeUndefined();
    expect(delivered.data?.['chatResponse']).toMatchObject({ replyId: 'reply-alice', text: 'for alice' });
    await waitUntil(() => log.warnings.length === 1, 'the drop to be logged');
    expect(log.warnings[0]?.[0]).toMatchObject({ sessionId: session.id, eventId: misdirected.id, reason: 'not_session_owner' });
    await stream.return(undefined);
    await waitUntil(() => services.bus.activeTopicCount() === 0, 'the topic to go idle');
  });
});

describe('chatResponse over WebSocket', () => {
  it("never shows the owner a reply published for another user on the owner's session", async () => {
    const gateway = await startGateway({ CHAT_RESPONDER: 'external', ...(await backendEnv('redis')) });
    const aliceToken = await tokenFor('alice');
    const start = await gateway.http(START_CHAT, {}, aliceToken);
    const sessionId = (start.body.data?.['startChatSession'] as { id: string }).id;
    const alice = connectWs(gateway.wsUrl, aliceToken);
    const replies = record(alice.client, CHAT_RESPONSE, { sessionId });
    await gateway.waitForSubscribers(topics.chatSession(sessionId));
    const publish = (userId: string, replyId: string) =>
      gateway.publish(`mutation($input: PublishChatResponseInput!) { publishChatResponse(input: $input) { eventId } }`, {
        input: chatResponse(sessionId, userId, replyId),
      });
    await publish('mallory', 'reply-mallory');
    await publish('alice', 'reply-alice');
    await replies.waitForResults(1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(replies.results.map((r) => (r.data?.['chatResponse'] as { replyId: string }).replyId)).toEqual(['reply-alice']);
  });
});
