/**
 * Who is waiting to hear that a member left a conversation: the open newMessage/userTyping
 * streams of that member on this instance. Shared by both directory implementations.
 */
export class RemovalWatchers {
  private readonly watchers = new Map<string, { conversationId: string; userId: string; callbacks: Set<() => void> }>();

  private static key(conversationId: string, userId: string): string {
    return `${conversationId}\u0000${userId}`;
  }

  /** Calls `onRemoved` once when notifyRemoved names this member; returns its unregistration. */
  watch(conversationId: string, userId: string, onRemoved: () => void): () => void {
    const key = RemovalWatchers.key(conversationId, userId);
    let entry = this.watchers.get(key);
    if (!entry) this.watchers.set(key, (entry = { conversationId, userId, callbacks: new Set() }));
    const { callbacks } = entry;
    callbacks.add(onRemoved);
    return () => {
      callbacks.delete(onRemoved);
      if (callbacks.size === 0 && this.watchers.get(key)?.callbacks === callbacks) this.watchers.delete(key);
    };
  }

  /**
   * Tells every watcher of this member. One that throws does not keep the others' streams open:
   * all are called, then the first error is thrown for the caller to log.
   */
  notifyRemoved(conversationId: string, userId: string): void {
    const key = RemovalWatchers.key(conversationId, userId);
    const entry = this.watchers.get(key);
    this.watchers.delete(key);
    let failed = false;
    let failure: unknown;
    for (const callback of entry?.callbacks ?? []) {
      try {
        callback();
      } catch (error) {
        if (!failed) failure = error;
        failed = true;
      }
    }
    if (failed) throw failure;
  }

  /** Every member someone is watching, e.g. to re-check them after a lost connection. */
  watchedMembers(): Array<{ conversationId: string; userId: string }> {
    return [...this.watchers.values()].map(({ conversationId, userId }) => ({ conversationId, userId }));
  }
}
