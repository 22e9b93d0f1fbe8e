import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineQueue } from '../src/sessions/deadline-queue.js';

interface Member {
  name: string;
  deadlineIndex: number;
  deadline: number;
}
const member = (name: string): Member => ({ name, deadlineIndex: -1, deadline: 0 });

describe('DeadlineQueue', () => {
  beforeEach(() => void vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => void vi.useRealTimers());

  it('calls each member once at its deadline, in deadline order, with one timer; cancelled and moved ones follow their changes', () => {
    const due: Array<[string, number]> = [];
    const queue = new DeadlineQueue<Member>((m) => due.push([m.name, Date.now()]));
    const start = Date.now();
    const members = Array.from({ length: 200 }, (_, i) => member(`m${i}`));
    // Deadlines in a scrambled order, some equal.
    members.forEach((m, i) => queue.schedule(m, start + 10 + ((i * 37) % 100)));
    expect(vi.getTimerCount()).toBe(1);
    queue.cancel(members[5]!);
    queue.cancel(members[5]!);
    queue.schedule(members[6]!, start + 500);
    vi.advanceTimersByTime(200);
    expect(due).toHaveLength(198);
    const times = due.map(([, at]) => at);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    for (const [name, at] of due) expect(at).toBe(start + 10 + ((Number(name.slice(1)) * 37) % 100));
    expect(due.some(([name]) => name === 'm5' || name === 'm6')).toBe(false);
    vi.advanceTimersByTime(300);
    expect(due.at(-1)).toEqual(['m6', start + 500]);
    expect(queue.size()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never calls back from schedule, takes a member rescheduled from its own callback, and waits past setTimeout’s range', () => {
    const due: string[] = [];
    const queue = new DeadlineQueue<Member>((m) => {
      due.push(m.name);
      if (m.name === 'warn') {
        m.name = 'close';
        queue.schedule(m, Date.now() + 50);
      }
    });
    const soon = member('warn');
    queue.schedule(soon, Date.now() - 5);
    expect(due).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(due).toEqual(['warn']);
    vi.advanceTimersByTime(50);
    expect(due).toEqual(['warn', 'close']);

    const far = member('far');
    const thirtyDays = 30 * 24 * 3600 * 1000;
    queue.schedule(far, Date.now() + thirtyDays);
    vi.advanceTimersByTime(thirtyDays - 1);
    expect(due).toEqual(['warn', 'close']);
    vi.advanceTimersByTime(1);
    expect(due).toEqual(['warn', 'close', 'far']);
  });
});
