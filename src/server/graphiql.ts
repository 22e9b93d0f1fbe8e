import type { GraphiQLOptions } from 'graphql-yoga';
import { bearerFromHeader } from '../auth/credentials.js';

export const GRAPHIQL_EXAMPLE_QUERY = `# Welcome to Tidings. Subscriptions run over WebSocket (graphql-ws).
#
# Your token: open this page as /graphql?token=<jwt>. It is sent in connection_init
# for subscriptions and as the Authorization header for queries and mutations.
# Mint a development token with: npm run token -- --sub alice --roles user,admin
#
# Press run, then publish a price (as a service) from another tab to see it arrive.

subscription LivePrices {
  priceUpdated(hotelId: "hotel-1") {
    id
    occurredAt
    hotelId
    roomType
    price { amount currency }
    previousPrice { amount currency }
  }
}

query Me {
  viewer { id roles anonymous tokenExpiresAt }
}
`;

/**
 * GraphiQL served at the GraphQL endpoint to browsers. A token given as `?token=<jwt>` is put
 * in graphql-ws `connection_init` (GraphiQL cannot send headers on a WebSocket) and in the
 * Authorization header of HTTP requests.
 */
export function graphiqlOptionsFor(request: Request): GraphiQLOptions {
  const rawToken = new URL(request.url).searchParams.get('token')?.trim();
  const token = rawToken ? (bearerFromHeader(`Bearer ${rawToken}`) ?? undefined) : undefined;
  const authorization = token ? `Bearer ${token}` : undefined;
  return {
    title: 'Tidings GraphiQL',
    subscriptionsProtocol: 'WS',
    defaultQuery: GRAPHIQL_EXAMPLE_QUERY,
    ...(authorization
      ? {
          additionalHeaders: { Authorization: authorization },
          // Not in Yoga's typings, but passed through to the graphql-ws client of GraphiQL.
          connectionParams: { authorization },
        }
      : {}),
  } as GraphiQLOptions;
}
