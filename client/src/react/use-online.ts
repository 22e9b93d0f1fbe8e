import type { CombinedError } from '@urql/core';
import { useEffect, useState } from 'react';
import { UserPresenceSubscription } from '../operations.js';
import { useConnectionLosses } from './connection-losses.js';
import { useTidingsClient } from './provider.js';
import { useEventStream, type EventStreamOptions } from './use-event-stream.js';
import type { PresenceStatus } from './use-presence.js';

/**
 * What the viewer shares with the users it asks about: the gateway shows a user's online state
 * only to the user, to the other members of a conversation the viewer is in, and to the other
 * party of a booking the viewer is the guest or host of (admins and services see anyone's).
 */
export type OnlineScope = { readonly conversationId: string; readonly bookingId?: undefined } | { readonly bookingId: string; readonly conversationId?: undefined };

export interface Online {
  /** userId → online, for every user asked about once the gateway has sent their state (`live`). */
  readonly online: ReadonlyMap<string, boolean>;
  /** `live` once every user's state has arrived (again, after a lost connection). */
  readonly status: PresenceStatus;
  /** Why the status is `error`: FORBIDDEN when a user is not one the viewer may see, BAD_USER_INPUT for too many ids. */
  readonly error: CombinedError | undefined;
}

interface OnlineState {
  /** The request this state is of: another one starts from nothing. */
  readonly key: string;
  readonly online: ReadonlyMap<string, boolean>;
  /** The users whose state arrived since the subscription started or the connection came back. */
  readonly fresh: ReadonlySet<string>;
  /** The connection was lost while states were shown: they may be out of date. */
  readonly lost: boolean;
}

const NOTHING: ReadonlyMap<string, boolean> = new Map();
const initial = (key: string): OnlineState => ({ key, online: NOTHING, fresh: new Set(), lost: false });

/**
 * Whether these users are online anywhere (a connection of theirs open on any instance), from the
 * gateway's `userPresence` subscription: each one's state, then every change. `scope` names the
 * conversation or booking the viewer shares with them; asking about anyone else fails with
 * FORBIDDEN (status `error`), never a silent `false`.
 *
 * Starts from nothing when the users or the scope change (compared by value: a new array with the
 * same ids is the same request); after a lost connection the status is `stale` until every user's
 * state has arrived again. Under a provider without a client nothing is subscribed and the status
 * stays `connecting`. `pause` and `resubscribeKey` work as in `useEventStream`; an empty
 * `userIds` subscribes to nothing (the gateway refuses it) and is `live` at once.
 */
export function useOnline(userIds: readonly string[], scope: OnlineScope, options: EventStreamOptions = {}): Online {
  const client = useTidingsClient();
  const ids = [...new Set(userIds)].sort();
  const conversationId = scope.conversationId ?? null;
  const bookingId = scope.bookingId ?? null;
  const key = JSON.stringify([ids, conversationId, bookingId]);
  const [state, setState] = useState<OnlineState>(() => initial(key));
  const { pause = false } = options;

  const { error } = useEventStream(
    UserPresenceSubscription,
    { userIds: ids, conversationId, bookingId },
    ({ userPresence: update }) => {
      // Only users of this request (a late update of the previous one is not).
      if (!ids.includes(update.userId)) return;
      setState((current) => {
        const base = current.key === key ? current : initial(key);
        return {
          ...base,
          online: base.online.get(update.userId) === update.online ? base.online : new Map(base.online).set(update.userId, update.online),
          fresh: base.fresh.has(update.userId) ? base.fresh : new Set(base.fresh).add(update.userId),
        };
      });
    },
    { ...options, pause: pause || ids.length === 0 },
  );

  useConnectionLosses(client, () => setState((current) => (current.fresh.size > 0 ? { ...current, fresh: new Set(), lost: current.online.size > 0 } : current)));
  // Refused, ended or paused: what was known is forgotten.
  useEffect(() => {
    if (error || pause) setState((current) => (current.online.size > 0 ? initial(current.key) : current));
  }, [error, pause]);

  const current = state.key === key ? state : initial(key);
  if (pause) return { online: NOTHING, status: 'paused', error: undefined };
  if (ids.length === 0) return { online: NOTHING, status: 'live', error: undefined };
  if (error) return { online: NOTHING, status: 'error', error };
  if (ids.every((userId) => current.fresh.has(userId))) return { online: current.online, status: 'live', error: undefined };
  return { online: current.online, status: current.lost ? 'stale' : 'connecting', error: undefined };
}
