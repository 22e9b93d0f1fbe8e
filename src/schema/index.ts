import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { builder } from './builder.js';
// Each feature module adds its types and root fields to the builder when imported.
import './common.js';
import './viewer.js';
import './prices.js';
import './conversations.js';
import './bookings.js';
import './notifications.js';
import './chat.js';
import './sessions.js';
import './presence.js';

builder.queryType({ description: 'Reads. Tidings stores no domain data, so there is little to read.' });
builder.mutationType({ description: 'Publishing (role `service`) and user actions.' });
builder.subscriptionType({ description: 'Live events, over WebSocket (graphql-ws) or SSE.' });

let schema: GraphQLSchema | undefined;

/** The executable schema. Built once: Pothos builders cannot be built twice. */
export function buildSchema(): GraphQLSchema {
  schema ??= builder.toSchema({ sortSchema: false });
  return schema;
}

/** The SDL committed as schema.graphql; a test fails when it drifts from the code. */
export function printSchemaSDL(): string {
  return `${printSchema(lexicographicSortSchema(buildSchema()))}\n`;
}
