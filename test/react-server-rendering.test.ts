import { createElement as h } from 'react';
import { renderToString } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { NotificationCreatedSubscription } from '@tidings/client';
import { TidingsProvider, useEventStream, useOnline, usePresence, useTidingsClient, useTidingsConnection } from '@tidings/client/react';

/**
 * @tidings/client/react rendered by react-dom/server, as Next.js renders client components on the
 * server: with no client the hooks render inertly, and without a provider they say so.
 */

function Badge() {
  const { status, transport } = useTidingsConnection();
  return h('span', null, `${status}/${transport}`);
}

function Stream() {
  useEventStream(NotificationCreatedSubscription, {}, () => undefined);
  return h('span', null, useTidingsClient() === null ? 'no client' : 'client');
}

function Here() {
  const { present, status } = usePresence('conv-1');
  const { online, status: onlineStatus } = useOnline(['bob'], { conversationId: 'conv-1' });
  return h('span', null, `${status} [${present.join(',')}] ${onlineStatus} ${online.size}`);
}

describe('@tidings/client/react on the server', () => {
  it('renders the connecting state under a provider without a client', () => {
    const markup = renderToString(h(TidingsProvider, { client: null }, h(Badge), h(Stream)));
    expect(markup).toBe('<span>connecting/websocket</span><span>no client</span>');
  });

  it('renders the presence hooks as connecting and empty under a provider without a client', () => {
    expect(renderToString(h(TidingsProvider, { client: null }, h(Here)))).toBe('<span>connecting [] connecting 0</span>');
  });

  it('refuses a hook used outside any provider, naming the fix', () => {
    expect(() => renderToString(h(Badge))).toThrow(/no <TidingsProvider client=\{…\}> above this component/);
  });
});
