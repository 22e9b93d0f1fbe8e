import { describe, expect, it } from 'vitest';
import { topics } from '../src/events/topics.js';
import { backendEnv, BACKENDS } from './support/backends.js';
import { startGateway, tokenFor } from './support/gateway.js';
import { NOTIFICATION_CREATED } from './support/operations.js';
import { waitUntil } from './support/wait.js';
import { connectWs, record } from './support/ws-client.js';

const PUBLISH_NOTIFICATIONS = 'mutation Notifications($inputs: [PublishNotificationInput!]!) { publishNotifications(inputs: $inputs) { eventId } }';
const USERS = 200;

describe.each(BACKENDS)("per-user rooms never cross (%s)", (backend) => {
  it(`delivers each of ${USERS} users its own notifications only, one lean group per user`, async () => {
    const gateway = await startGateway({ ...(await backendEnv(backend)), WS_MAX_CONNECTIONS_PER_USER: '5' });
    const users = Array.from({ length: USERS }, (_, index) => `user-${index}`);
    const subscribers = await Promise.all(
      users.map(async (userId) => {
        const connection = connectWs(gateway.wsUrl, await tokenFor(userId));
        return { userId, recording: record<{ notificationCreated: { userId: string; notificationId: string } }>(connection.client, NOTIFICATION_CREATED, {}) };
      }),
    );
    // An admin following one user, with the same document and variables as nobody else.
    const admin = connectWs(gateway.wsUrl, await tokenFor('root', ['user', 'admin']));
    const watched = record<{ notificationCreated: { userId: string } }>(admin.client, NOTIFICATION_CREATED, { userId: 'user-7' });
    for (const userId of users) await gateway.waitForSubscribers(topics.userNotifications(userId), userId === 'user-7' ? 2 : 1);
    // Everyone shares a document, variables and roles, but naming the topic reads who they are.
    expect(gateway.app.webSockets.sharedGroupCount()).toBe(USERS + 1);

    // Three notifications per user, interleaved across users, published in bulk.
    const inputs = [0, 1, 2].flatMap((round) => users.map((userId) => ({ notificationId: `${userId}-${round}`, userId, kind: 'SYSTEM', title: `round ${round}` })));
    const service = await tokenFor('notifier', ['service']);
    for (let start = 0; start < inputs.length; start += 100) {
      const { body } = await gateway.http(PUBLISH_NOTIFICATIONS, { inputs: inputs.slice(start, start + 100) }, service);
      expect(body.errors).toBeUndefined();
    }
    await waitUntil(() => subscribers.every(({ recording }) => recording.results.length >= 3), 'three results for every user', 15_000);
    await watched.waitForResults(3);
    // Anything extra would have arrived with the last of them: give it a moment on both paths.
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const { userId, recording } of subscribers) {
      expect(recording.results.map((result) => result.data?.notificationCreated.notificationId)).toEqual([`${userId}-0`, `${userId}-1`, `${userId}-2`]);
    }
    expect(watched.results.map((result) => result.data?.notificationCreated.userId)).toEqual(['user-7', 'user-7', 'user-7']);
  }, 60_000);
});
