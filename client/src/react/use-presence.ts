import type { CombinedError } from '@urql/core';
import { useEffect, useState } from 'react';
import { ConversationPresenceSubscription } from '../operations.js';
import { useConnectionLosses } from './connection-losses.js';
import { useTidingsClient } from './provider.js';
import { useEventStream, type EventStreamOptions } from './use-event-stream.js';

/**
 * Where a presence hook stands:
 * - `paused`: `pause` is set, nothing is subscribed;
 * - `connecting`: subscribed (or no client yet), the gateway has not sent the current state;
 * - `live`: what the hook returns is the gateway's current state, kept up to date;
 * - `stale`: the connection was lost since; the last state known is returned until the gateway
 *   sends the current one again on the new connection;
 * - `error`: the gateway refused or ended the subscription (`error` says why: FORBIDDEN for a
 *   non-member or a removed member, BAD_USER_INPUT …); nothing is known.
 */
export type PresenceStatus = 'paused' | 'connecting' | 'live' | 'stale' | 'error';

export interface Presence {
  /** The conversation's members present now (the viewer among them), sorted; empty until the first snapshot. */
  readonly present: readonly string[];
  readonly status: PresenceStatus;
  /** Why the status is `error` (a `CombinedError`); cleared on resubscribe. */
  readonly error: CombinedError | undefined;
}

interface PresenceState {
  /** The conversation this state is of: another one starts from nothing. */
  readonly conversationId: string;
  /** Undefined until the first SNAPSHOT. */
  readonly present: readonly string[] | undefined;
  readonly stale: boolean;
}

const EMPTY: readonly string[] = Object.freeze([]);
const initial = (conversationId: string): PresenceState => ({ conversationId, present: undefined, stale: false });
const sorted = (userIds: Iterable<string>): readonly string[] => [...new Set(userIds)].sort();

/**
 * Who of a conversation's members is present (a green dot beside each), from the gateway's
 * `presence` subscription: its SNAPSHOT, then every JOINED / LEFT applied. Subscribing counts the
 * viewer as present, so the viewer is in `present` too.
 *
 * Starts from nothing when `conversationId` changes; after a lost connection the status is `stale`
 * until the restarted subscription's SNAPSHOT replaces the set. Under a provider without a client
 * (server rendering, signed out) nothing is subscribed and the status stays `connecting`.
 * `pause` and `resubscribeKey` work as in `useEventStream`.
 */
export function usePresence(conversationId: string, options: EventStreamOptions = {}): Presence {
  const client = useTidingsClient();
  const [state, setState] = useState<PresenceState>(() => initial(conversationId));

  const { error } = useEventStream(
    ConversationPresenceSubscription,
    { conversationId },
    ({ presence: update }) => {
      // A late update of the previous conversation's subscription.
      if (update.conversationId !== conversationId) return;
      setState((current) => {
        const base = current.conversationId === conversationId ? current : initial(conversationId);
        if (update.kind === 'SNAPSHOT') return { conversationId, present: sorted(update.present ?? []), stale: false };
        // CHANGES before any SNAPSHOT cannot happen (the gateway sends the SNAPSHOT first); ignored if they did.
        if (!base.present) return base;
        const present = new Set(base.present);
        for (const change of update.changes) {
          if (change.change === 'JOINED') present.add(change.userId);
          else present.delete(change.userId);
        }
        return { ...base, present: sorted(present) };
      });
    },
    options,
  );

  useConnectionLosses(client, () => setState((current) => (current.present && !current.stale ? { ...current, stale: true } : current)));
  // Refused, ended or paused: what was known is forgotten, so a resubscribe starts from its SNAPSHOT.
  const { pause = false } = options;
  useEffect(() => {
    if (error || pause) setState((current) => (current.present ? initial(current.conversationId) : current));
  }, [error, pause]);

  const current = state.conversationId === conversationId ? state : initial(conversationId);
  if (pause) return { present: EMPTY, status: 'paused', error: undefined };
  if (error) return { present: EMPTY, status: 'error', error };
  if (!current.present) return { present: EMPTY, status: 'connecting', error: undefined };
  return { present: current.present, status: current.stale ? 'stale' : 'live', error: undefined };
}
