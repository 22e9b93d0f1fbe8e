import type { GraphiQLOptions } from 'graphql-yoga';

export const GRAPHIQL_EXAMPLE_QUERY = `# Welcome to Tidings.
# Subscriptions run over WebSocket (graphql-ws).
#
# Your token: open this page as
#   /graphql?token=<jwt>
# It goes into connection_init for subscriptions
# and into the Authorization header otherwise.
# Development tokens: npm run token -- --sub alice
#
# Run LivePrices, then publish a price as a
# service (publishPrice) from another tab.

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
/** A compact JWS: three base64url parts. Anything else is ignored, never echoed into the page. */
const JWT_SHAPE = /^[A-Za-z0-9_-]{1,4096}\.[A-Za-z0-9_-]{1,8192}\.[A-Za-z0-9_-]{0,1024}$/;

export function graphiqlOptionsFor(request: Request): GraphiQLOptions {
  const token = new URL(request.url).searchParams.get('token')?.trim();
  // The options are embedded in an inline <script>: only a token of the JWT alphabet may reach it.
  const authorization = token && JWT_SHAPE.test(token) ? `Bearer ${token}` : undefined;
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
