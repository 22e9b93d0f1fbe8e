import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createMemoryPresenceStore } from '../src/presence/memory-presence-store.js';
import { conversationScope } from '../src/presence/presence-store.js';
import { PresenceTracker, type PresenceChange } from '../src/presence/presence-tracker.js';
import { waitUntil } from './support/wait.js';

/** The tracker alone, over the memory store: coalescing and the bound on one announcement. */
describe('PresenceTracker', () => {
  function tracker(options: { maxChangesPerAnnouncement?: number; coalesceMs?: number } = {}) {
    const announced: Array<{ scope: string; changes: readonly PresenceChange[] }> = [];
    const instance = new PresenceTracker({
      store: createMemoryPresenceStore({ instanceId: 'test', ttlMs: 60_000 }),
      graceMs: 0,
      coalesceMs: options.coalesceMs ?? 50,
      heartbeatMs: 20_000,
      sweepMs: 10_000,
      maxChangesPerAnnouncement: options.maxChangesPerAnnouncement,
      announce: async (scope, changes) => void announced.push({ scope, changes }),
      logger: pino({ level: 'silent' }),
    });
    onTestFinished(() => instance.close());
    return { instance, announced };
  }

  it('announces a burst of joins in one scope as one announcement, split at the bound', async () => {
    const { instance, announced } = tracker({ maxChangesPerAnnouncement: 3 });
    const scope = conversationScope('burst');
    for (let index = 0; index < 7; index++) instance.hold(scope, `user-${index}`);
    await waitUntil(() => announced.reduce((sum, { changes }) => sum + changes.length, 0) === 7, 'seven JOINED');
    expect(announced.map(({ changes }) => changes.length)).toEqual([3, 3, 1]);
    expect(announced.flatMap(({ changes }) => changes.map((change) => `${change.userId}:${change.change}`)).sort()).toEqual(
      Array.from({ length: 7 }, (_, index) => `user-${index}:JOINED`).sort(),
    );
  });

  it("announces only a user's latest change within one interval, and counts one presence for many holds", async () => {
    const { instance, announced } = tracker({ coalesceMs: 200 });
    const scope = conversationScope('flicker');
    const first = instance.hold(scope, 'quick');
    const second = instance.hold(scope, 'quick');
    second.release();
    first.release();
    first.release(); // idempotent
    const stays = instance.hold(scope, 'stays');
    await waitUntil(() => announced.length === 1, 'one announcement');
    await new Promise((resolve) => setTimeout(resolve, 300));
    // quick joined and left within the interval: its LEFT alone (subscribers not showing it drop it).
    expect(announced.map(({ changes }) => changes.map((change) => `${change.userId}:${change.change}`).sort())).toEqual([['quick:LEFT', 'stays:JOINED']]);
    expect(instance.heldCounts()).toEqual({ conversation: 1, user: 0, watchedScopes: 0 });
    stays.release();
    await waitUntil(() => announced.length === 2, 'stays LEFT');
    expect(announced[1]?.changes.map((change) => `${change.userId}:${change.change}`)).toEqual(['stays:LEFT']);
    expect(instance.heldCounts()).toEqual({ conversation: 0, user: 0, watchedScopes: 0 });
  });
});

describe('PresenceTracker announcing while the bus cannot publish', () => {
  it('tries a failed announcement again until it goes out, unless a later change of the user superseded it', async () => {
    const attempts: string[][] = [];
    let failing = true;
    const instance = new PresenceTracker({
      store: createMemoryPresenceStore({ instanceId: 'test', ttlMs: 60_000 }),
      graceMs: 0,
      coalesceMs: 20,
      heartbeatMs: 20_000,
      sweepMs: 10_000,
      announce: async (_scope, changes) => {
        attempts.push(changes.map((change) => `${change.userId}:${change.change}`));
        if (failing) throw new Error('Redis is away');
      },
      logger: pino({ level: 'silent' }),
    });
    onTestFinished(() => instance.close());
    const scope = conversationScope('outage');
    instance.hold(scope, 'a');
    const b = instance.hold(scope, 'b');
    await waitUntil(() => attempts.length === 1, 'the first attempt');
    // While it fails, b leaves: its LEFT supersedes its JOINED.
    b.release();
    await waitUntil(() => attempts.length >= 2, 'a second attempt');
    failing = false;
    await waitUntil(() => attempts.length >= 3 && attempts.at(-1)?.length === 2, 'a successful attempt');
    expect(attempts[0]?.sort()).toEqual(['a:JOINED', 'b:JOINED']);
    expect(attempts.at(-1)?.sort()).toEqual(['a:JOINED', 'b:LEFT']);
    const count = attempts.length;
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    expect(attempts.length).toBe(count);
  });
});
