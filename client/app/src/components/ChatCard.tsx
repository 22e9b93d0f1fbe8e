import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useMutation } from 'urql';
import { ChatResponseSubscription, SendChatMessageMutation, StartChatSessionMutation } from '@tidings/client';
import type { ChatResponseSubscription as ChatResponseData } from '@tidings/client/types';
import { newId } from '../demo.js';
import { useEventStream } from '@tidings/client/react';
import { useAction } from '../hooks.js';

type ChatEvent = ChatResponseData['chatResponse'];
type ReplyStatus = ChatEvent['status'];

type Turn =
  | { readonly kind: 'user'; readonly id: string; readonly text: string }
  | {
      readonly kind: 'assistant';
      readonly replyId: string;
      /** CHUNK texts by sequence: they are joined in sequence order. */
      readonly chunks: Readonly<Record<number, string>>;
      /** The status of the latest event (highest sequence) of this reply. */
      readonly status: ReplyStatus;
      readonly lastSequence: number;
      readonly errorText?: string;
    };

/**
 * Subscriptions have no "subscribed" acknowledgement, and sendChatMessage travels over HTTP while
 * chatResponse travels over the WebSocket: give a just-started subscription this long to reach the
 * gateway before sending, so the first reply is not missed.
 */
const SUBSCRIBE_HEAD_START_MS = 250;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Applies one chatResponse event to the transcript. */
function applyChatEvent(turns: readonly Turn[], event: ChatEvent): readonly Turn[] {
  const index = turns.findIndex((turn) => turn.kind === 'assistant' && turn.replyId === event.replyId);
  const existing = index >= 0 ? turns[index] : undefined;
  const reply =
    existing?.kind === 'assistant'
      ? existing
      : { kind: 'assistant' as const, replyId: event.replyId, chunks: {}, status: event.status, lastSequence: -1 };
  const isLatest = event.sequence > reply.lastSequence;
  const next: Turn = {
    ...reply,
    chunks: event.status === 'CHUNK' ? { ...reply.chunks, [event.sequence]: event.text ?? '' } : reply.chunks,
    status: isLatest ? event.status : reply.status,
    lastSequence: Math.max(reply.lastSequence, event.sequence),
    ...(event.status === 'ERROR' ? { errorText: event.text ?? 'The assistant could not answer.' } : {}),
  };
  return index >= 0 ? turns.map((turn, position) => (position === index ? next : turn)) : [...turns, next];
}

function replyText(chunks: Readonly<Record<number, string>>): string {
  return Object.entries(chunks)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, text]) => text)
    .join('');
}

/** Chat with the assistant: a session on first use, the reply streamed chunk by chunk. */
export function ChatCard({ resubscribeKey }: { resubscribeKey: number }) {
  const [, startChatSession] = useMutation(StartChatSessionMutation);
  const [, sendChatMessage] = useMutation(SendChatMessageMutation);
  const [sessionId, setSessionId] = useState<string>();
  const [turns, setTurns] = useState<readonly Turn[]>([]);
  const [draft, setDraft] = useState('');

  const session = useRef<{ id: Promise<string>; subscribedAt?: number }>(undefined);
  // After the gateway restarted (memory mode forgets sessions), start a new session on next use.
  useEffect(() => {
    session.current = undefined;
    setSessionId(undefined);
  }, [resubscribeKey]);

  const { error: streamError } = useEventStream(
    ChatResponseSubscription,
    { sessionId: sessionId ?? '' },
    ({ chatResponse }) => setTurns((current) => applyChatEvent(current, chatResponse)),
    { pause: !sessionId, resubscribeKey },
  );
  // Declared after useEventStream, so this runs once the subscription has been started.
  useEffect(() => {
    if (sessionId && session.current) session.current.subscribedAt = Date.now();
  }, [sessionId]);

  /** Starts the session on first use (focus or send); later calls reuse it. */
  const ensureSession = (): Promise<string> => {
    if (!session.current) {
      const id = startChatSession({}).then((result) => {
        const started = result.data?.startChatSession.id;
        if (!started) throw new Error(result.error?.message ?? 'Could not start a chat session');
        setSessionId(started);
        return started;
      });
      session.current = { id };
      id.catch(() => {
        session.current = undefined;
      });
    }
    return session.current.id;
  };

  const send = useAction(async (text: string) => {
    const id = await ensureSession();
    // Wait until the subscription is running, plus a head start for its subscribe message.
    const deadline = Date.now() + 5_000;
    while (!session.current?.subscribedAt && Date.now() < deadline) await sleep(20);
    const sinceSubscribe = Date.now() - (session.current?.subscribedAt ?? 0);
    if (sinceSubscribe < SUBSCRIBE_HEAD_START_MS) await sleep(SUBSCRIBE_HEAD_START_MS - sinceSubscribe);
    setTurns((current) => [...current, { kind: 'user', id: newId('chat'), text }]);
    setDraft('');
    const result = await sendChatMessage({ sessionId: id, text });
    if (result.error) throw new Error(result.error.message);
  });

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    const text = draft.trim();
    if (text) void send.run(text);
  };

  const lastReply = turns.findLast((turn) => turn.kind === 'assistant');
  const transcriptRef = useRef<HTMLOListElement>(null);
  useEffect(() => {
    const list = transcriptRef.current;
    if (list) list.scrollTop = list.scrollHeight;
  }, [turns]);

  return (
    <section className="card chat" aria-labelledby="chat-title">
      <header className="card-header">
        <h2 id="chat-title">Assistant</h2>
        <span className="card-hint">chatResponse{sessionId ? ` · session ${sessionId.slice(0, 8)}` : ''}</span>
      </header>
      {turns.length === 0 ? <p className="empty">Ask anything: the reply streams in chunk by chunk.</p> : null}
      <ol className="transcript" ref={transcriptRef} aria-label="Chat transcript">
        {turns.map((turn) =>
          turn.kind === 'user' ? (
            <li key={turn.id} className="bubble bubble-user">
              {turn.text}
            </li>
          ) : (
            <li
              key={turn.replyId}
              className={`bubble bubble-assistant status-${turn.status.toLowerCase()}`}
              data-testid={turn === lastReply ? 'chat-reply' : undefined}
              data-status={turn.status}
            >
              {turn.status === 'ERROR' ? (
                <span className="error">{turn.errorText}</span>
              ) : (
                <>
                  {replyText(turn.chunks)}
                  {turn.status === 'TYPING' || turn.status === 'CHUNK' ? <span className="cursor" aria-label="typing" /> : null}
                </>
              )}
            </li>
          ),
        )}
      </ol>
      <form className="composer" onSubmit={onSubmit}>
        <label className="visually-hidden" htmlFor="chat-input">
          Message to the assistant
        </label>
        <input
          id="chat-input"
          data-testid="chat-input"
          value={draft}
          placeholder="Is breakfast included?"
          autoComplete="off"
          onFocus={() => void ensureSession().catch(() => undefined)}
          onChange={(event) => setDraft(event.target.value)}
        />
        <button type="submit" data-testid="chat-send" disabled={send.busy || !draft.trim()}>
          Ask
        </button>
      </form>
      {send.error ? <p className="error">{send.error}</p> : null}
      {streamError ? <p className="error">{streamError.message}</p> : null}
    </section>
  );
}
