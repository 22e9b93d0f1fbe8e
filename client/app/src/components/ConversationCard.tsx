import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { useMutation } from 'urql';
import { NewMessageSubscription, SetTypingMutation, UserTypingSubscription } from '@tidings/client';
import type { NewMessageSubscription as NewMessageData } from '@tidings/client/types';
import { CONVERSATION_ID, DEMO_USERS, displayName, formatTime, type DemoUser } from '../demo.js';
import { useEventStream, usePresence } from '@tidings/client/react';
import { useAction } from '../hooks.js';
import { publishMessage } from '../service.js';
import { PresenceDot } from './PresenceDot.js';

type Message = NewMessageData['newMessage'];

/** Send STARTED at most this often while the user keeps typing. */
const TYPING_THROTTLE_MS = 1_000;
/** Send STOPPED after this long without a keystroke. */
const TYPING_IDLE_MS = 2_000;
/** Hide someone's "is typing" when neither STARTED nor STOPPED came for this long. */
const TYPING_SHOWN_MS = 5_000;

/** The demo conversation between Alice, Hank and Root: who is here, messages, a composer and typing state. */
export function ConversationCard({ viewer, resubscribeKey }: { viewer: DemoUser; resubscribeKey: number }) {
  const [messages, setMessages] = useState<readonly Message[]>([]);
  const { error: messagesError } = useEventStream(
    NewMessageSubscription,
    { conversationId: CONVERSATION_ID },
    ({ newMessage }) => setMessages((current) => (current.some((message) => message.id === newMessage.id) ? current : [...current, newMessage])),
    { resubscribeKey },
  );
  const typingUsers = useTypingUsers(resubscribeKey);
  const typing = useTypingSender();

  const [draft, setDraft] = useState('');
  const send = useAction(async (text: string) => {
    typing.stopped();
    await publishMessage(viewer.id, text);
    setDraft('');
  });

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    const text = draft.trim();
    if (text) void send.run(text);
  };

  const listRef = useRef<HTMLOListElement>(null);
  useEffect(() => {
    const list = listRef.current;
    if (list) list.scrollTop = list.scrollHeight;
  }, [messages.length]);

  return (
    <section className="card conversation" aria-labelledby="conversation-title">
      <header className="card-header">
        <h2 id="conversation-title">Conversation</h2>
        <span className="card-hint">
          {CONVERSATION_ID} · newMessage, userTyping, presence
        </span>
      </header>
      <WhoIsHere viewer={viewer} resubscribeKey={resubscribeKey} />
      {messages.length === 0 ? (
        <p className="empty">No messages yet. Tidings stores nothing: you see what is sent while you are here.</p>
      ) : null}
      <ol className="messages" ref={listRef} data-testid="message-list" aria-label="Messages">
        {messages.map((message) => (
          <li key={message.id} className={message.senderId === viewer.id ? 'message own' : 'message'} data-testid="message">
            <span className="message-meta">
              <strong>{displayName(message.senderId)}</strong> {formatTime(message.occurredAt)}
            </span>
            <span className="message-text">{message.text}</span>
          </li>
        ))}
      </ol>
      <div className="typing-slot" aria-live="polite">
        <p className="typing" data-testid="typing-indicator" hidden={typingUsers.length === 0}>
          {typingLabel(typingUsers)}
        </p>
      </div>
      <form className="composer" onSubmit={onSubmit}>
        <label className="visually-hidden" htmlFor="composer-input">
          Message to {CONVERSATION_ID}
        </label>
        <input
          id="composer-input"
          data-testid="composer-input"
          value={draft}
          placeholder={`Write as ${viewer.name}…`}
          autoComplete="off"
          onChange={(event) => {
            setDraft(event.target.value);
            if (event.target.value) typing.keystroke();
            else typing.stopped();
          }}
          onBlur={typing.stopped}
        />
        <button type="submit" data-testid="composer-send" disabled={send.busy || !draft.trim()}>
          Send
        </button>
      </form>
      <p className="footnote">
        Sent as the message service (demo): the app calls <code>publishMessage</code> with a service token.
      </p>
      {send.error ? <p className="error">Could not send: {send.error}</p> : null}
      {messagesError ? <p className="error">{messagesError.message}</p> : null}
    </section>
  );
}

/** A dot per member of the demo conversation: green while a tab of theirs has it open, from usePresence. */
function WhoIsHere({ viewer, resubscribeKey }: { viewer: DemoUser; resubscribeKey: number }) {
  const { present, status, error } = usePresence(CONVERSATION_ID, { resubscribeKey });
  const current = status === 'live';
  return (
    <div className="who-is-here">
      <ul className="members" aria-label="Who is here" data-testid="presence-list" data-status={status} aria-busy={!current}>
        {DEMO_USERS.map((member) => {
          const here = present.includes(member.id);
          return (
            <li key={member.id} className="member" data-testid={`presence-${member.id}`} data-present={here} title={`${member.name}: ${here ? 'online' : 'away'}`}>
              <PresenceDot on={here} current={current} />
              {member.name}
              {member.id === viewer.id ? <span className="muted"> (you)</span> : null}
              <span className="visually-hidden">, {here ? 'online' : 'away'}</span>
            </li>
          );
        })}
      </ul>
      {status === 'stale' ? <span className="muted presence-note">reconnecting…</span> : null}
      {error ? <span className="error presence-note">{error.message}</span> : null}
    </div>
  );
}

function typingLabel(userIds: readonly string[]): string {
  const names = userIds.map(displayName);
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
}

/** Who else is typing right now, from userTyping: until their STOPPED, or for 5 s after their last STARTED. */
function useTypingUsers(resubscribeKey: number): readonly string[] {
  const [typing, setTyping] = useState<readonly string[]>([]);
  const timers = useRef(new Map<string, ReturnType<typeof setTimeout>>());

  const stop = useCallback((userId: string) => {
    clearTimeout(timers.current.get(userId));
    timers.current.delete(userId);
    setTyping((current) => current.filter((id) => id !== userId));
  }, []);

  useEventStream(
    UserTypingSubscription,
    { conversationId: CONVERSATION_ID },
    ({ userTyping }) => {
      if (userTyping.state === 'STOPPED') {
        stop(userTyping.userId);
        return;
      }
      clearTimeout(timers.current.get(userTyping.userId));
      timers.current.set(
        userTyping.userId,
        setTimeout(() => stop(userTyping.userId), TYPING_SHOWN_MS),
      );
      setTyping((current) => (current.includes(userTyping.userId) ? current : [...current, userTyping.userId]));
    },
    { resubscribeKey },
  );

  useEffect(() => {
    const pending = timers.current;
    return () => pending.forEach((timer) => clearTimeout(timer));
  }, []);
  return typing;
}

/** Tells the others when this user types: STARTED at most once a second, STOPPED after 2 s idle or on send. */
function useTypingSender() {
  const [, setTypingState] = useMutation(SetTypingMutation);
  const lastStarted = useRef(0);
  const idleTimer = useRef<ReturnType<typeof setTimeout>>(undefined);

  const stopped = useCallback(() => {
    clearTimeout(idleTimer.current);
    idleTimer.current = undefined;
    if (lastStarted.current === 0) return;
    lastStarted.current = 0;
    void setTypingState({ conversationId: CONVERSATION_ID, state: 'STOPPED' });
  }, [setTypingState]);

  const keystroke = useCallback(() => {
    const now = Date.now();
    if (now - lastStarted.current >= TYPING_THROTTLE_MS) {
      lastStarted.current = now;
      void setTypingState({ conversationId: CONVERSATION_ID, state: 'STARTED' });
    }
    clearTimeout(idleTimer.current);
    idleTimer.current = setTimeout(stopped, TYPING_IDLE_MS);
  }, [setTypingState, stopped]);

  useEffect(() => () => clearTimeout(idleTimer.current), []);
  return { keystroke, stopped };
}
