import { createContext, useContext, type ReactNode } from 'react';
import { Provider as UrqlProvider } from 'urql';
import type { TidingsClient } from '../create-client.js';

const TidingsContext = createContext<TidingsClient | null>(null);

export interface TidingsProviderProps {
  /** The client from `createTidingsClient`, created once (outside render, or in a `useState` initializer). */
  readonly client: TidingsClient;
  readonly children?: ReactNode;
}

/**
 * Makes `client` available to the hooks below it, and its urql client to urql's own hooks
 * (`useQuery`, `useMutation`, `useSubscription`), so one provider serves both.
 */
export function TidingsProvider({ client, children }: TidingsProviderProps) {
  return (
    <TidingsContext.Provider value={client}>
      <UrqlProvider value={client.urql}>{children}</UrqlProvider>
    </TidingsContext.Provider>
  );
}

/** The client of the nearest `TidingsProvider`; throws when there is none (a wiring mistake). */
export function useTidingsClient(): TidingsClient {
  const client = useContext(TidingsContext);
  if (!client) throw new Error('useTidingsClient: no <TidingsProvider client={…}> above this component');
  return client;
}
