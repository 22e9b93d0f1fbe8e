import { GraphQLError, type GraphQLFormattedError } from 'graphql';

/**
 * Every error a client can see carries one of these codes in `extensions.code`.
 * Anything else thrown inside the gateway is masked as INTERNAL_SERVER_ERROR by Yoga
 * and logged in full for operators.
 */
export const ErrorCode = {
  /** No credentials where they are required, or a token that failed verification. HTTP 401. */
  Unauthenticated: 'UNAUTHENTICATED',
  /** Authenticated, but not allowed to open this operation or see this field. */
  Forbidden: 'FORBIDDEN',
  /** An argument or a published payload failed validation. HTTP 400. */
  BadUserInput: 'BAD_USER_INPUT',
  /** A referenced thing (for example a chat session) does not exist. */
  NotFound: 'NOT_FOUND',
  /** The event could not be handed to the pub/sub backend. HTTP 503. */
  PublishFailed: 'PUBLISH_FAILED',
  /** A backend the gateway needs (Redis) is unreachable; retry shortly. HTTP 503. */
  ServiceUnavailable: 'SERVICE_UNAVAILABLE',
  /** A quota was reached (for example subscriptions per connection). */
  LimitExceeded: 'LIMIT_EXCEEDED',
  /** Too many requests in a short time (for example typing updates). */
  RateLimited: 'RATE_LIMITED',
  /** The client did not read its results in time; the subscription was ended. */
  SlowConsumer: 'SLOW_CONSUMER',
  /** The request cannot be served this way (for example refreshSession over HTTP). HTTP 400. */
  BadRequest: 'BAD_REQUEST',
  /** TRUSTED_DOCUMENTS: a document's text (or nothing) where its hash is required. HTTP 400. */
  TrustedDocumentRequired: 'TRUSTED_DOCUMENT_REQUIRED',
  /** TRUSTED_DOCUMENTS: a hash none of the manifests has. HTTP 400. */
  TrustedDocumentNotFound: 'TRUSTED_DOCUMENT_NOT_FOUND',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

function codedError(code: ErrorCode, message: string, httpStatus?: number, extra?: Record<string, unknown>) {
  return new GraphQLError(message, {
    extensions: { code, ...extra, ...(httpStatus ? { http: { status: httpStatus } } : {}) },
  });
}

/**
 * `reason` (missing, expired, bad_signature, ...) lets a client decide to refresh its token.
 * `unavailable` (the token could not be checked: signing keys or revocations out of reach) is
 * answered 503, so clients and proxies retry instead of signing the user out.
 */
export const unauthenticated = (message = 'Authentication required', reason?: string) =>
  codedError(ErrorCode.Unauthenticated, message, reason === 'unavailable' ? 503 : 401, reason ? { reason } : undefined);

export const forbidden = (message = 'Not authorized') => codedError(ErrorCode.Forbidden, message);

export const badUserInput = (message: string, issues?: readonly string[]) =>
  codedError(ErrorCode.BadUserInput, message, undefined, issues ? { issues } : undefined);

export const notFound = (message: string) => codedError(ErrorCode.NotFound, message);

export const badRequest = (message: string) => codedError(ErrorCode.BadRequest, message, 400);

/** `reason` (document_text, no_hash) says sending the hash would help. */
export const trustedDocumentRequired = (message: string, reason: string) => codedError(ErrorCode.TrustedDocumentRequired, message, 400, { reason });

export const trustedDocumentNotFound = (message: string) => codedError(ErrorCode.TrustedDocumentNotFound, message, 400);

/** FORBIDDEN with a `reason` a client acts on (refreshSession: `other_user`, `roles_changed`). */
export const forbiddenBecause = (message: string, reason: string) => codedError(ErrorCode.Forbidden, message, undefined, { reason });

/** One item of a bulk call that failed validation: its position in the list and what was wrong. */
export const badItem = (message: string, index: number, issues: readonly string[]) => codedError(ErrorCode.BadUserInput, message, undefined, { index, issues });

/** One item of a bulk publish the bus refused. */
export const itemPublishFailed = (index: number) => codedError(ErrorCode.PublishFailed, `The event at index ${index} could not be published; try again`, undefined, { index });

export const publishFailed = (message = 'The event could not be published; try again') =>
  codedError(ErrorCode.PublishFailed, message);

export const serviceUnavailable = (message = 'A backend is unavailable; try again shortly') =>
  codedError(ErrorCode.ServiceUnavailable, message, 503);

export const limitExceeded = (message: string, limit: string) => codedError(ErrorCode.LimitExceeded, message, undefined, { limit });

export const rateLimited = (message: string, limit: string, retryAfterMs: number) =>
  codedError(ErrorCode.RateLimited, message, 429, { limit, retryAfterMs });

export const slowConsumer = (message: string) => codedError(ErrorCode.SlowConsumer, message, undefined, { limit: 'slow_consumer' });

/** The same error (message, location, path, cause) with other extensions. */
export function withExtensions(error: GraphQLError, extensions: Record<string, unknown>): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions,
  });
}

/** An error as a socket sends it: Yoga's `http` extension is for HTTP responses and dropped. */
export function forSocket(error: GraphQLError): GraphQLFormattedError {
  const { http: _http, ...extensions } = error.extensions ?? {};
  const json = typeof error.toJSON === 'function' ? error.toJSON() : { message: error.message };
  return { ...json, extensions };
}

/** A field of an event the subscriber may not see (admin-only): nulled with FORBIDDEN. */
export function isWithheldField(error: GraphQLFormattedError | GraphQLError): boolean {
  return error.extensions?.['code'] === ErrorCode.Forbidden && (error.path?.length ?? 0) > 1;
}
