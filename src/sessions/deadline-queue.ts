import { MAX_TIMER_MS } from '../auth/expiry.js';

/** What the queue keeps on each member: its place in the heap (-1 when not queued) and deadline. */
export interface DeadlineSlot {
  deadlineIndex: number;
  deadline: number;
}

/**
 * Calls `onDue(member)` once each member's deadline (epoch ms) has passed, with one timer for all
 * of them: a binary heap ordered by deadline, and a timer armed for the earliest. Every connection
 * has a deadline (its token's expiry) with a duration of its own, and a Node timer per connection
 * would cost a Timeout and a timer list each (about 0.2 KB) for the connection's life.
 */
export class DeadlineQueue<Member extends DeadlineSlot> {
  private readonly heap: Member[] = [];
  private timer: NodeJS.Timeout | undefined = undefined;
  /** The deadline the timer is armed for. */
  private armedFor = Infinity;

  constructor(
    private readonly onDue: (member: Member) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Queues `member` for `deadline`, or moves it there if it is queued already. */
  schedule(member: Member, deadline: number): void {
    this.cancel(member);
    member.deadline = deadline;
    member.deadlineIndex = this.heap.length;
    this.heap.push(member);
    this.up(member.deadlineIndex);
    this.arm();
  }

  cancel(member: Member): void {
    const index = member.deadlineIndex;
    if (index < 0 || this.heap[index] !== member) return;
    const last = this.heap.pop()!;
    member.deadlineIndex = -1;
    if (last !== member) {
      this.heap[index] = last;
      last.deadlineIndex = index;
      this.down(index);
      this.up(last.deadlineIndex);
    }
    this.arm();
  }

  size(): number {
    return this.heap.length;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private arm(): void {
    const first = this.heap[0];
    if (!first) return this.stop();
    if (this.timer && this.armedFor <= first.deadline) return;
    clearTimeout(this.timer);
    this.armedFor = first.deadline;
    // At least 1 ms: a deadline due now is handled from the timer, never inside schedule().
    this.timer = setTimeout(() => this.fire(), Math.max(1, Math.min(first.deadline - this.now(), MAX_TIMER_MS)));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = this.now();
    for (let first = this.heap[0]; first && first.deadline <= now; first = this.heap[0]) {
      this.cancel(first);
      this.onDue(first);
    }
    this.arm();
  }

  private up(index: number): void {
    const { heap } = this;
    const member = heap[index]!;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (parent.deadline <= member.deadline) break;
      heap[index] = parent;
      parent.deadlineIndex = index;
      index = parentIndex;
    }
    heap[index] = member;
    member.deadlineIndex = index;
  }

  private down(index: number): void {
    const { heap } = this;
    const member = heap[index]!;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.deadline < heap[left]!.deadline ? right : left;
      if (heap[child]!.deadline >= member.deadline) break;
      heap[index] = heap[child]!;
      heap[index]!.deadlineIndex = index;
      index = child;
    }
    heap[index] = member;
    member.deadlineIndex = index;
  }
}
