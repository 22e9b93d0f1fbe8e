/** A slice is visited this often: small batches (10,000 connections at 12 s: ~40 pings a slice). */
const SLICE_MS = 50;

/**
 * Visits every member once per `periodMs` (to ping it, or to drop it if the last ping went
 * unanswered), with one timer for all of them. Members are spread over slices visited in turn
 * every SLICE_MS, so the work comes in small batches instead of bursts that would delay event
 * delivery, and a member is first visited a full period after it was added. A timer and a closure
 * per connection would cost about 300 bytes each, for as long as the connection lives.
 */
export class KeepAliveSweep<Member> {
  private readonly buckets: Array<Set<Member>>;
  /** The slice visited next. */
  private cursor = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(periodMs: number, private readonly visit: (member: Member) => void) {
    const count = Math.min(1_000, Math.max(1, Math.round(periodMs / SLICE_MS)));
    this.buckets = Array.from({ length: count }, () => new Set());
    this.timer = setInterval(() => this.visitNextBucket(), Math.max(1, Math.round(periodMs / count)));
    this.timer.unref();
  }

  /** Returns the member's slice, for `remove`. */
  add(member: Member): number {
    // The slice just visited comes round again after a full period.
    const bucket = (this.cursor + this.buckets.length - 1) % this.buckets.length;
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
    this.cursor = (this.cursor + 1) % this.buckets.length;
    for (const member of bucket) this.visit(member);
  }
}
