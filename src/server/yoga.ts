import { createYoga, maskError, useReadinessCheck, type Plugin, type YogaInitialContext } from 'graphql-yoga';
import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Presence } from '../observability/presence.js';
import type { Authenticator } from '../auth/authenticator.js';
import { bearerFromHeader } from '../auth/credentials.js';
import type { Principal } from '../auth/principal.js';
import { TokenRejectedError } from '../auth/token-verifier.js';
import { unauthenticated } from '../errors.js';
import { LazyChildLogger, yogaLoggerFrom, type OperationLog } from '../logging/logger.js';
import type { GatewayServices, GraphQLContext, SessionRefresher } from '../schema/context.js';
import { graphiqlOptionsFor } from './graphiql.js';
import type { GraphiQLPage } from './graphiql-page.js';
import { useStreamGuards } from './use-stream-guards.js';
import { useInputErrors, withInputCode } from './use-input-errors.js';
import { useSubscriptionAdmission } from './use-subscription-admission.js';
import type { SubscriptionAdmission } from './subscription-admission.js';
import type { SessionRevocations } from '../sessions/session-revocations.js';
import { useDevTokens } from './use-dev-tokens.js';
import { useTrustedDocuments } from './trusted-documents.js';
import { transportOfRequest } from './request-transport.js';
import type { InFlightOperations } from './use-in-flight.js';
import { useIntrospectionPolicy } from './use-introspection-policy.js';
import { useQueryLimits } from './use-query-limits.js';
import { useRateLimits, type RateBudgets } from './use-rate-limits.js';
import type { RateLimiter } from '../protection/rate-limiter.js';
import type { Config } from '../config/config.js';
import type { GatewayMetrics } from '../metrics/metrics.js';

export const GRAPHQL_PATH = '/graphql';

/** What each transport puts in Yoga's initial context. WebSocket sets `principal` at connect. */
export interface TransportContext {
  readonly principal?: Principal;
  readonly connectionId?: string;
  readonly operationId?: string;
  /** The peer's address (WebSocket); HTTP takes it from the Node request. */
  readonly clientAddress?: string;
  /** WebSocket only: counts a refused operation against the connection (persistent flooders are closed). */
  readonly onRateLimited?: () => void;
  /** WebSocket only, for users: what refreshSession calls. */
  readonly refreshSession?: SessionRefresher;
  /** Node's request, set by Yoga's node adapter for HTTP and SSE. */
  readonly req?: IncomingMessage;
}

/**
 * An instance's readiness and what it is made of: `ready` decides; `components` says what is up
 * or down, including parts that do not decide readiness (the RabbitMQ ingress: subscribers are
 * still served while the broker is down, and it keeps its messages until the ingress is back).
 */
export interface Readiness {
  readonly ready: boolean;
  readonly components: Readonly<Record<string, string>>;
}

export function createGatewayYoga(deps: {
  schema: GraphQLSchema;
  services: GatewayServices;
  authenticator: Authenticator;
  logger: Logger;
  /** GraphiQL's page and files, when GraphiQL is enabled. */
  graphiql: GraphiQLPage | undefined;
  /** Unexpected errors show clients their original message and stack (ERROR_DETAILS, development only). */
  errorDetails: boolean;
  /** TRUSTED_DOCUMENTS' manifests (hash → document): only these run, except for services. */
  trustedDocuments: ReadonlyMap<string, string> | undefined;
  /** The HS256 secret, when GET /dev/token may mint development tokens. */
  devTokenSecret: Uint8Array | undefined;
  /** Tokens are accepted this long past `exp`, so connections end this long after it too. */
  clockToleranceMs: number;
  inFlight: InFlightOperations;
  limits: Config['limits'];
  metrics: GatewayMetrics;
  protection: {
    readonly rateLimiter: RateLimiter;
    readonly rateBudgets: RateBudgets;
    readonly admission: SubscriptionAdmission;
    readonly revocations: SessionRevocations;
  };
  /** The peer's address of an HTTP request, through trusted proxies (the transport's createClientAddressOf). */
  clientAddressOf: (request: IncomingMessage) => string;
  presence: Presence;
  /** What GET /ready answers: 200 when `ready`, else 503, with the state of each part as JSON. */
  readiness: () => Readiness;
  /** How subscriptions are delivered over SSE (the transports' plugin: useSharedSseDeliveries), after admission. */
  sseDelivery: Plugin<GraphQLContext>;
  /** Further plugins (an embedding application's), after Tidings' own. */
  plugins: readonly Plugin<GraphQLContext>[];
}) {
  const { services, authenticator, logger } = deps;

  // One authentication per request, shared by the trusted-documents check (is it a service?) and
  // the context.
  const requestPrincipals = new WeakMap<Request, Promise<Principal>>();
  const authenticateRequest = (request: Request): Promise<Principal> => {
    let principal = requestPrincipals.get(request);
    if (!principal) {
      principal = authenticator.authenticate(bearerFromHeader(request.headers.get('authorization')));
      requestPrincipals.set(request, principal);
    }
    return principal;
  };

  async function principalFromRequest(request: Request, transport: 'http' | 'sse', log: OperationLog): Promise<Principal> {
    try {
      return await authenticateRequest(request);
    } catch (error) {
      if (!(error instanceof TokenRejectedError)) throw error;
      log.info({ reason: error.reason }, `${transport} authentication refused`);
      deps.metrics.authFailures.inc({ reason: error.reason, transport });
      throw unauthenticated(error.message, error.reason);
    }
  }

  return createYoga<TransportContext, GraphQLContext>({
    schema: deps.schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    logging: yogaLoggerFrom(logger),
    healthCheckEndpoint: '/health',
    // Yoga's own SSE serves subscriptions on /graphql to clients that send Accept:
    // text/event-stream: the graphql-sse protocol's "distinct connections" mode, one operation per
    // request, authenticated per request like any HTTP call. (Single-connection mode is left out:
    // its streams are shared by a token rather than bound to a user.)
    graphiql: deps.graphiql ? (request) => graphiqlOptionsFor(request) : false,
    renderGraphiQL: deps.graphiql?.render,
    context: async (initial: YogaInitialContext & TransportContext): Promise<GraphQLContext> => {
      if (initial.connectionId !== undefined && initial.principal) {
        // WebSocket: authenticated once, in connection_init.
        const { connectionId, operationId } = initial;
        return {
          principal: initial.principal,
          services,
          transport: 'websocket',
          // Made when first written to: most operations never log.
          log: new LazyChildLogger(logger, { connectionId, operationId }),
          clientAddress: initial.clientAddress,
          onRateLimited: initial.onRateLimited,
          refreshSession: initial.refreshSession,
        };
      }
      // HTTP and SSE: authenticated per request.
      const transport = transportOfRequest(initial.request);
      const log = new LazyChildLogger(logger, { requestId: requestIdOf(initial.request) });
      return {
        principal: await principalFromRequest(initial.request, transport, log),
        services,
        transport,
        log,
        clientAddress: initial.req ? deps.clientAddressOf(initial.req) : 'unknown',
        traceparent: initial.request.headers.get('traceparent') ?? undefined,
      };
    },
    maskedErrors: { maskError: createErrorMasker(logger, deps.errorDetails) },
    plugins: [
      // GraphiQL's page compressed (Accept-Encoding) and never stored: it embeds the ?token.
      ...(deps.graphiql ? [deps.graphiql.plugin] : []),
      // GraphQL-level metrics (parse/validate/execute durations, errors, HTTP durations) into the
      // gateway's registry; served by the operator listener, not on /graphql's port.
      usePrometheus({
        registry: deps.metrics.registry,
        endpoint: false,
        skipIntrospection: true,
        // The schema deprecates nothing, and counting deprecated fields walks every document.
        metrics: { graphql_envelop_deprecated_field: false },
        // No label may carry a value the client chose: each new value is a new series, kept until
        // the process ends, and parse runs before authentication. The operation's name, the URL
        // (with its query string: GET variables) and an error's path (response keys, aliases
        // included) all would; the operation type, HTTP method, status code and phase are bounded.
        labels: { operationName: false, url: false, path: false },
      }),
      // Before anything parses: a refused document is never parsed (HTTP and SSE; the WebSocket
      // transport applies the same rule, resolveTrustedDocument).
      ...(deps.trustedDocuments ? [useTrustedDocuments({ documents: deps.trustedDocuments, principalOf: authenticateRequest, metrics: deps.metrics })] : []),
      ...(deps.devTokenSecret ? [useDevTokens(deps.devTokenSecret)] : []),
      useInputErrors(),
      deps.inFlight.plugin,
      useIntrospectionPolicy(deps.limits.introspection, deps.metrics),
      useQueryLimits(deps.limits, deps.metrics),
      // Queries and mutations; subscribes are charged with their quota by useSubscriptionAdmission.
      useRateLimits({ limiter: deps.protection.rateLimiter, budgets: deps.protection.rateBudgets, metrics: deps.metrics }),
      useSubscriptionAdmission(deps.protection.admission),
      deps.sseDelivery,
      useStreamGuards({ clockToleranceMs: deps.clockToleranceMs, revocations: deps.protection.revocations, metrics: deps.metrics, presence: deps.presence }),
      useReadinessCheck({
        endpoint: '/ready',
        check: ({ fetchAPI }) => {
          const readiness = deps.readiness();
          return fetchAPI.Response.json(readiness, { status: readiness.ready ? 200 : 503, headers: { 'cache-control': 'no-store' } });
        },
      }),
      ...deps.plugins,
    ],
  });
}

export type GatewayYoga = ReturnType<typeof createGatewayYoga>;

/** A proxy's request id when it sends a sane one (nginx `$request_id`), else a new one. */
function requestIdOf(request: Request): string {
  const given = request.headers.get('x-request-id');
  return given && /^[\w.-]{1,128}$/.test(given) ? given : randomUUID();
}

/**
 * Yoga's error masking plus ours: input errors get their code, anything unexpected becomes
 * INTERNAL_SERVER_ERROR for the client and is logged in full for operators. Also used for
 * results the WebSocket transport executes itself (shared deliveries). Whether clients see the
 * details is the configuration's explicit choice: Yoga's own default reads NODE_ENV, and its
 * `isDev` argument is ignored here so an unset variable can never expose them.
 */
export function createErrorMasker(logger: Logger, exposeDetails: boolean) {
  return (error: unknown, message = 'Unexpected error.'): Error => {
    const coded = error instanceof GraphQLError ? withInputCode(error) : error;
    const masked = maskError(coded, message, exposeDetails);
    if (masked !== coded) logger.error({ err: coded }, 'unexpected error masked for the client');
    return masked;
  };
}
