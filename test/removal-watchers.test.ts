import { describe, expect, it } from 'vitest';
import { RemovalWatchers } from '../src/directory/removal-watchers.js';

describe('removal watchers', () => {
  it('tell every watcher of a removed member even when one of them throws, then throw its error', () => {
    const watchers = new RemovalWatchers();
    const told: string[] = [];
    watchers.watch('c1', 'alice', () => {
      told.push('first');
      throw new Error('a broken watcher');
    });
    watchers.watch('c1', 'alice', () => told.push('second'));
    watchers.watch('c1', 'bob', () => told.push('bob'));
    expect(() => watchers.notifyRemoved('c1', 'alice')).toThrow('a broken watcher');
    expect(told).toEqual(['first', 'second']);
    // Told once: the member's watches are gone, another member's stay.
    watchers.notifyRemoved('c1', 'alice');
    expect(told).toEqual(['first', 'second']);
    expect(watchers.watchedMembers()).toEqual([{ conversationId: 'c1', userId: 'bob' }]);
  });
});
