import { createContext, useContext, type ReactNode } from 'react';
import { Provider as UrqlProvider } from 'urql';
import type { TidingsClient } from '../create-client.js';

/** `undefined`: no provider above (a wiring mistake); `null`: a provider without a client. */
const TidingsContext = createContext<TidingsClient | null | undefined>(undefined);

export interface TidingsProviderProps {
  /**
   * The client from `createTidingsClient`, created once per signed-in user outside render (module
   * level, or in the sign-in handler: StrictMode calls `useState` initializers twice, and each
   * client connects). `null` where there is none: during server rendering (the client connects as
   * soon as it is created, so create it in the browser only) or while signed out. Without a
   * client the hooks below are inert: `useTidingsConnection` says `connecting` and
   * `useEventStream` subscribes to nothing.
   */
  readonly client: TidingsClient | null;
  readonly children?: ReactNode;
}

/**
 * Makes `client` available to the hooks below it, and its urql client to urql's own hooks
 * (`useQuery`, `useMutation`, `useSubscription`), so one provider serves both. (urql's hooks need
 * a client: under a provider whose client is `null` they throw, as they do without one.)
 */
export function TidingsProvider({ client, children }: TidingsProviderProps) {
  return (
    <TidingsContext.Provider value={client}>{client ? <UrqlProvider value={client.urql}>{children}</UrqlProvider> : children}</TidingsContext.Provider>
  );
}

/**
 * The client of the nearest `TidingsProvider`, or `null` if that provider has none; throws when
 * there is no provider at all (a wiring mistake, better found at once than as silence).
 */
export function useTidingsClient(): TidingsClient | null {
  const client = useContext(TidingsContext);
  if (client === undefined) throw new Error('@tidings/client/react: no <TidingsProvider client={…}> above this component');
  return client;
}
