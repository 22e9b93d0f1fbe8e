export { createTidingsClient, type TidingsClient, type TidingsClientOptions, type TokenProvider } from './create-client.js';
export type { TrustedDocumentsMode } from './trusted-documents.js';
export { ConnectionStateStore, type ConnectionState, type ConnectionStatus, type TransportKind } from './connection-state.js';
export { LoggedOutError, CloseCodes } from './errors.js';
export { backoffDelayMs, type BackoffOptions } from './backoff.js';
export * from './operations.js';
/** The data and variables type of a typed document: `ResultOf<typeof PriceUpdatedSubscription>`. */
export type { ResultOf, VariablesOf } from '@graphql-typed-document-node/core';
