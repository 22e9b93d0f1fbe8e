/** How many slices one keep-alive period is cut into. */
const BUCKETS = 8;

/**
 * Visits every member once per `periodMs` (to ping it, or to drop it if the last ping went
 * unanswered), with one timer for all of them. Members are spread over BUCKETS slices visited in
 * turn, so the work comes in small batches instead of one burst per period, and a member is first
 * visited a full period after it was added. A timer and a closure per connection would cost about
 * 300 bytes each, for as long as the connection lives.
 */
export class KeepAliveSweep<Member> {
  private readonly buckets: Array<Set<Member>> = Array.from({ length: BUCKETS }, () => new Set());
  /** The slice visited next. */
  private cursor = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(periodMs: number, private readonly visit: (member: Member) => void) {
    this.timer = setInterval(() => this.visitNextBucket(), Math.max(1, Math.floor(periodMs / BUCKETS)));
    this.timer.unref();
  }

  /** Returns the member's slice, for `remove`. */
  add(member: Member): number {
    // The slice just visited comes round again after a full period.
    const bucket = (this.cursor + BUCKETS - 1) % BUCKETS;
    this.buckets[bucket]!.add(member);
    return bucket;
  }

  remove(member: Member, bucket: number): void {
    this.buckets[bucket]?.delete(member);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private visitNextBucket(): void {
    const bucket = this.buckets[this.cursor]!;
    this.cursor = (this.cursor + 1) % BUCKETS;
    for (const member of bucket) this.visit(member);
  }
}
