/**
 * Throw this from your token provider when the user is logged out: the client stops
 * reconnecting, fails its subscriptions and reports `offline` with reason `logged-out`.
 */
export class LoggedOutError extends Error {
  constructor(message = 'The user is logged out') {
    super(message);
    this.name = 'LoggedOutError';
  }
}

/** graphql-ws close codes the client reacts to (see the gateway's docs/ERRORS.md). */
export const CloseCodes = {
  /** Server shutting down: reconnect, to any instance. */
  GoingAway: 1001,
  /** Token missing, invalid or expired: reconnect with a fresh token from the provider. */
  Unauthenticated: 4403,
} as const;
