import { describe, expect, it } from 'vitest';
import { createTypingThrottle, MAX_UPDATES_PER_INTERVAL } from '../src/publish/typing-throttle.js';

/**
 * The throttle's contract as docs/SCHEMA.md states it: a STOPPED that clears a STARTED the others
 * were shown always passes; everything else is capped per interval. (The basic repeat/cap cases
 * live in test/contracts.test.ts.)
 */
type State = 'STARTED' | 'STOPPED';

function clocked(intervalMs = 1_000) {
  let now = 0;
  const throttle = createTypingThrottle(intervalMs, () => now);
  return {
    at(time: number, state: State, conversationId = 'c', userId = 'u') {
      now = time;
      return throttle.admit(conversationId, userId, state);
    },
  };
}

describe('typing throttle: a STOPPED that clears an indicator', () => {
  it('passes after a STARTED even when the interval is already at its cap', () => {
    const throttle = clocked();
    // Fills the interval so that its last passed update, the fourth, is a STARTED.
    const passed = [
      throttle.at(0, 'STOPPED'),
      throttle.at(10, 'STARTED'),
      throttle.at(20, 'STOPPED'),
      throttle.at(30, 'STARTED'),
    ];
    expect(passed).toEqual([true, true, true, true]);
    // The others now show "u is typing…": the STOPPED must reach them, cap or not.
    expect(throttle.at(40, 'STOPPED')).toBe(true);
    // It cannot be used to keep flooding: no STARTED (capped) and no repeated STOPPED passes.
    expect(throttle.at(50, 'STARTED')).toBe(false);
    expect(throttle.at(60, 'STOPPED')).toBe(false);
    expect(throttle.at(999, 'STARTED')).toBe(false);
    // A new interval starts afresh.
    expect(throttle.at(1_000, 'STARTED')).toBe(true);
    expect(throttle.at(1_001, 'STOPPED')).toBe(true);
  });

  it('never leaves a passed STARTED without its STOPPED, whatever the sequence', () => {
    // A deterministic pseudo-random sequence of updates, several per interval.
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const throttle = clocked(1_000);
    let time = 0;
    let shown: State = 'STOPPED';
    const passedAt: number[] = [];
    for (let index = 0; index < 5_000; index++) {
      time += Math.floor(random() * 120);
      const state: State = random() < 0.5 ? 'STARTED' : 'STOPPED';
      const passed = throttle.at(time, state);
      if (state === 'STOPPED' && shown === 'STARTED') expect(passed, `STOPPED at ${time} after a passed STARTED`).toBe(true);
      if (passed) {
        shown = state;
        passedAt.push(time);
      }
    }
    // And the flood bound: at most the cap plus one clearing STOPPED in each interval.
    let windowStart = -Infinity;
    let inWindow = 0;
    for (const at of passedAt) {
      if (at - windowStart >= 1_000) {
        windowStart = at;
        inWindow = 0;
      }
      inWindow += 1;
      expect(inWindow).toBeLessThanOrEqual(MAX_UPDATES_PER_INTERVAL + 1);
    }
  });

  it('still counts a STOPPED that clears nothing like any other update', () => {
    const throttle = clocked();
    expect(throttle.at(0, 'STARTED')).toBe(true);
    expect(throttle.at(1, 'STOPPED')).toBe(true);
    // Already stopped: a repeat within the interval is dropped.
    expect(throttle.at(2, 'STOPPED')).toBe(false);
    expect(throttle.at(3, 'STARTED')).toBe(true);
    expect(throttle.at(4, 'STOPPED')).toBe(true);
    // Four passed, the last a STOPPED: the cap holds for both states.
    expect(throttle.at(5, 'STARTED')).toBe(false);
    expect(throttle.at(6, 'STOPPED')).toBe(false);
  });

  it('keeps users and conversations apart', () => {
    const throttle = clocked();
    for (const [time, state] of [[0, 'STOPPED'], [1, 'STARTED'], [2, 'STOPPED'], [3, 'STARTED']] as const) {
      expect(throttle.at(time, state, 'c', 'u')).toBe(true);
    }
    // Another user's and another conversation's budgets are untouched.
    expect(throttle.at(4, 'STARTED', 'c', 'v')).toBe(true);
    expect(throttle.at(5, 'STARTED', 'd', 'u')).toBe(true);
    expect(throttle.at(6, 'STOPPED', 'c', 'u')).toBe(true);
  });

  it('passes everything when the throttle is off (interval 0)', () => {
    const throttle = clocked(0);
    for (let index = 0; index < 20; index++) expect(throttle.at(0, index % 2 === 0 ? 'STARTED' : 'STOPPED')).toBe(true);
  });
});
