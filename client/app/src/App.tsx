import { useEffect, useRef, useState } from 'react';
import { useQuery } from 'urql';
import { createTidingsClient, ViewerQuery, type TidingsClient } from '@tidings/client';
import { TidingsProvider } from '@tidings/client/react';
import { BookingsCard } from './components/BookingsCard.js';
import { ChatCard } from './components/ChatCard.js';
import { ConnectionBadge } from './components/ConnectionBadge.js';
import { ConversationCard } from './components/ConversationCard.js';
import { PricesCard } from './components/PricesCard.js';
import { ServicePanel } from './components/ServicePanel.js';
import { ToastProvider } from './components/Toasts.js';
import { DEMO_USERS, type DemoUser } from './demo.js';
import { DevTokenSource } from './dev-tokens.js';
import { ensureDemoDirectory } from './service.js';

interface Session {
  readonly user: DemoUser;
  readonly client: TidingsClient;
}

/** Remembers the signed-in demo user per browser tab, so a reload keeps it. */
const STORAGE_KEY = 'tidings-demo-user';

/** The gateway serving this page also serves GraphQL (`npm run app:dev` proxies it). */
const GRAPHQL_URL = new URL('/graphql', window.location.origin).href;

/**
 * Signs a demo user in: a development token, the demo's conversation members and booking parties
 * (as the message and booking services would record them), then a Tidings client that asks for a
 * fresh token near expiry.
 */
async function signIn(user: DemoUser): Promise<Session> {
  const tokens = new DevTokenSource(user.id, user.roles);
  await tokens.get();
  await ensureDemoDirectory();
  const client = createTidingsClient({
    url: GRAPHQL_URL,
    getToken: tokens.get,
    // A demo should come back quickly after a gateway restart.
    backoff: { initialDelayMs: 250, maxDelayMs: 3_000 },
  });
  return { user, client };
}

export function App() {
  const [session, setSession] = useState<Session>();
  const [pending, setPending] = useState<string>();
  const [error, setError] = useState<string>();
  const attempt = useRef(0);

  const pick = async (user: DemoUser) => {
    const current = ++attempt.current;
    setPending(user.id);
    setError(undefined);
    try {
      const next = await signIn(user);
      // A newer pick won: drop this one.
      if (current !== attempt.current) {
        next.client.dispose();
        return;
      }
      sessionStorage.setItem(STORAGE_KEY, user.id);
      setSession(next);
    } catch (caught) {
      if (current === attempt.current) setError(caught instanceof Error ? caught.message : String(caught));
    } finally {
      if (current === attempt.current) setPending(undefined);
    }
  };

  // The previous user's client goes away when another user signs in.
  useEffect(() => () => session?.client.dispose(), [session]);

  // Sign the remembered user in again after a reload.
  useEffect(() => {
    const remembered = DEMO_USERS.find((user) => user.id === sessionStorage.getItem(STORAGE_KEY));
    if (remembered) void pick(remembered);
  }, []); // once, on load

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <h1>Tidings</h1>
          <span>realtime GraphQL gateway · demo</span>
        </div>
        <UserPicker current={session?.user} pending={pending} onPick={(user) => void pick(user)} />
        {session ? (
          <div className="session">
            <TidingsProvider client={session.client}>
              <SignedInAs user={session.user} />
              <ConnectionBadge />
            </TidingsProvider>
          </div>
        ) : null}
      </header>
      {error ? (
        <p className="banner banner-error" role="alert">
          Could not sign in: {error}
        </p>
      ) : null}
      {session ? (
        <TidingsProvider client={session.client}>
          <ToastProvider>
            <Dashboard key={session.user.id} session={session} />
          </ToastProvider>
        </TidingsProvider>
      ) : (
        <Welcome />
      )}
    </div>
  );
}

function UserPicker({ current, pending, onPick }: { current: DemoUser | undefined; pending: string | undefined; onPick: (user: DemoUser) => void }) {
  return (
    <nav className="user-picker" aria-label="Sign in as a development user">
      {DEMO_USERS.map((user) => (
        <button
          key={user.id}
          type="button"
          data-testid={`sign-in-${user.id}`}
          aria-pressed={current?.id === user.id}
          aria-busy={pending === user.id}
          onClick={() => onPick(user)}
        >
          <span className="user-name">{user.name}</span>
          <span className="user-label">{user.label}</span>
        </button>
      ))}
    </nav>
  );
}

/** Who the gateway says we are (the viewer query), and when the token expires. */
function SignedInAs({ user }: { user: DemoUser }) {
  const [{ data }] = useQuery({ query: ViewerQuery });
  const roles = data?.viewer.roles.map((role) => role.toLowerCase()).join(', ') ?? user.roles.join(', ');
  return (
    <div className="signed-in">
      <span className="muted">Signed in as</span> <strong data-testid="signed-in-as">{user.name}</strong>
      <span className="muted"> · {roles}</span>
    </div>
  );
}

/**
 * Bumped when the connection comes back after a loss. A restarted gateway without Redis has
 * forgotten conversation members, booking parties and chat sessions, so the demo records them
 * again and the conversation, the bookings' presence and the chat resubscribe.
 */
function useRecoveryKey(client: TidingsClient): number {
  const [key, setKey] = useState(0);
  useEffect(() => {
    let wasLive = false;
    let lost = false;
    let active = true;
    const unsubscribe = client.connection.subscribe(({ status }) => {
      if (status !== 'live') {
        lost = wasLive;
        return;
      }
      wasLive = true;
      if (!lost) return;
      lost = false;
      ensureDemoDirectory().then(
        () => active && setKey((value) => value + 1),
        () => undefined,
      );
    });
    return () => {
      active = false;
      unsubscribe();
    };
  }, [client]);
  return key;
}

function Dashboard({ session }: { session: Session }) {
  const { user, client } = session;
  const recoveryKey = useRecoveryKey(client);
  return (
    <main className="grid" data-testid="dashboard" data-recoveries={recoveryKey}>
      <PricesCard isAdmin={user.roles.includes('admin')} />
      <ConversationCard viewer={user} resubscribeKey={recoveryKey} />
      <ChatCard resubscribeKey={recoveryKey} />
      <BookingsCard viewer={user} resubscribeKey={recoveryKey} />
      <ServicePanel viewer={user} />
    </main>
  );
}

function Welcome() {
  return (
    <main className="welcome card">
      <h2>Pick a development user</h2>
      <p>
        Sign in as <strong>Alice</strong> (a guest), <strong>Hank</strong> (a host) or <strong>Root</strong> (an admin). The
        app gets a token from the gateway&apos;s <code>/dev/token</code>, connects over WebSocket and subscribes to prices,
        the demo conversation and who is in it, your bookings, notifications and the assistant.
      </p>
      <p className="muted">
        Open a second window as another user to watch their dot turn green, and typing and messages travel between them. Use the “Publish as a
        service” card to play the backend services.
      </p>
    </main>
  );
}
