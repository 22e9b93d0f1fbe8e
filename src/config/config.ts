import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import proxyaddr from 'proxy-addr';
import { readTrustedDocumentManifests } from './trusted-document-manifests.js';

/**
 * The development-only HS256 secret used when neither JWT_SECRET nor JWT_JWKS_URL is set
 * outside production, so `npm start` works right after `npm ci`. It is public (it is in this
 * file), so production refuses to start with it.
 */
export const DEVELOPMENT_JWT_SECRET = 'tidings-development-secret-do-not-use-in-production';

const ROLE_VALUES = ['user', 'host', 'service', 'admin'] as const;

const booleanFromEnv = z
  .string()
  .transform((value) => value.trim().toLowerCase())
  .pipe(z.enum(['true', 'false', '1', '0']))
  .transform((value) => value === 'true' || value === '1');

const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();

/** Exchange and queue names: RabbitMQ allows up to 255 bytes; these keep to a safe alphabet. */
const amqpName = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'letters, digits and _ . : - only (at most 200)')
  .refine((name) => !name.startsWith('amq.'), 'names starting with amq. are reserved by RabbitMQ');

/** ISO 4217 codes the runtime knows (and so its minor units, see toMinorUnits). */
const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

/** Parses TRUST_PROXY: a hop count, or a comma-separated list; throws on what proxy-addr rejects. */
export function parseTrustProxy(value: string | undefined): readonly string[] | number {
  if (value === undefined || value.trim() === '') return [];
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const list = value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  proxyaddr.compile(list);
  return list;
}

/** Every environment variable Tidings reads, with its default. Documented in README.md. */
const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: z.coerce.number().int().min(0).max(65_535).default(4000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Unset: decided in loadConfig (pretty only with the public development secret).
  LOG_FORMAT: z.enum(['pretty', 'json']).optional(),
  INSTANCE_ID: z.string().min(1).max(64).optional(),
  TRUST_PROXY: z
    .string()
    .optional()
    .superRefine((value, context) => {
      try {
        parseTrustProxy(value);
      } catch (error) {
        context.addIssue({ code: 'custom', message: `a hop count or a comma-separated list of addresses, subnets, loopback, linklocal, uniquelocal (${error instanceof Error ? error.message : String(error)})` });
      }
    })
    .transform((value) => parseTrustProxy(value)),

  JWT_SECRET: z.string().min(32, 'must be at least 32 characters (HS256 needs a 256-bit key)').optional(),
  JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  // Parsed and checked in crossFieldProblems: the valid list depends on the key source.
  JWT_ALGORITHMS: z.string().optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  JWT_CLOCK_TOLERANCE_SECONDS: nonNegativeInt.max(300).default(5),
  ALLOW_ANONYMOUS: booleanFromEnv.default(false),
  VERIFIED_TOKEN_CACHE_SIZE: nonNegativeInt.max(10_000_000).default(20_000),
  JWKS_VERIFIED_TOKEN_MAX_AGE_SECONDS: nonNegativeInt.max(3_600).default(120),

  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits and _ . : - only (at most 64)')
    .default('tidings:'),

  AMQP_URL: z.url({ protocol: /^amqps?$/ }).optional(),
  AMQP_EXCHANGE: amqpName.default('tidings_events'),
  AMQP_QUEUE: amqpName.default('tidings.ingress'),
  AMQP_PREFETCH: positiveInt.max(10_000).default(50),
  AMQP_DEDUPE_WINDOW_SECONDS: positiveInt.max(7 * 24 * 3600).default(600),
  AMQP_BOOKING_CURRENCY: z
    .string()
    .refine((code) => CURRENCIES.has(code), 'an ISO 4217 code such as EUR')
    .optional(),

  // OpenTelemetry tracing (docs/OPERATIONS.md "Tracing"): the standard variables. The endpoint is
  // checked here and handed to the exporter; OTEL_EXPORTER_OTLP_HEADERS and _TIMEOUT are read by
  // the exporter itself, as the OpenTelemetry specification says.
  OTEL_SDK_DISABLED: booleanFromEnv.default(false),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  OTEL_SERVICE_NAME: z.string().min(1).max(128).default('tidings'),
  OTEL_TRACES_SAMPLER: z
    .enum(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'])
    .default('parentbased_always_on'),
  OTEL_TRACES_SAMPLER_ARG: z.string().trim().regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, 'a ratio from 0 to 1').transform(Number).optional(),
  OTEL_BSP_SCHEDULE_DELAY: nonNegativeInt.max(600_000).default(5_000),

  EVENT_MAX_BYTES: positiveInt.max(16 * 1024 * 1024).default(64 * 1024),
  PUBLISH_MAX_BATCH: positiveInt.max(100_000).default(1_000),
  MEMBERSHIP_CACHE_MS: nonNegativeInt.max(3_600_000).default(30_000),
  CHAT_SESSION_TTL_SECONDS: positiveInt.max(30 * 24 * 3600).default(24 * 3600),

  GRAPHIQL: booleanFromEnv.optional(),
  DEV_TOKENS: booleanFromEnv.optional(),
  ERROR_DETAILS: booleanFromEnv.optional(),
  WEB_APP: booleanFromEnv.default(true),
  WEB_APP_DIR: z.string().min(1).optional(),
  CHAT_RESPONDER: z.enum(['builtin', 'external']).default('builtin'),
  CHAT_CHUNK_DELAY_MS: nonNegativeInt.max(10_000).default(60),
  TYPING_THROTTLE_MS: nonNegativeInt.max(60_000).default(1_500),
  PRESENCE_TTL_SECONDS: positiveInt.min(3).max(3_600).default(30),
  PRESENCE_GRACE_MS: nonNegativeInt.max(600_000).default(3_000),
  PRESENCE_COALESCE_MS: nonNegativeInt.max(10_000).default(250),
  PRESENCE_MAX_USER_IDS: positiveInt.max(1_000).default(100),
  WS_KEEP_ALIVE_MS: positiveInt.max(600_000).default(12_000),
  WS_CONNECTION_INIT_TIMEOUT_MS: positiveInt.max(60_000).default(3_000),
  WS_MAX_PAYLOAD_BYTES: positiveInt.max(16 * 1024 * 1024).default(256 * 1024),
  WS_MAX_MESSAGES_PER_SECOND: positiveInt.max(1_000_000).default(50),
  WS_MESSAGE_BURST: positiveInt.max(1_000_000).default(200),
  WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: positiveInt.max(10_000).default(100),
  WS_MAX_CONNECTIONS_PER_USER: positiveInt.max(1_000_000).default(20),
  WS_MAX_BUFFERED_BYTES: positiveInt.max(256 * 1024 * 1024).default(1024 * 1024),
  WS_SLOW_CONSUMER_GRACE_MS: positiveInt.max(600_000).default(5_000),
  MAX_SUBSCRIPTIONS_PER_USER: positiveInt.max(10_000_000).default(500),
  ANONYMOUS_MAX_CONNECTIONS_PER_ADDRESS: positiveInt.max(1_000_000).default(50),
  ANONYMOUS_MAX_SUBSCRIPTIONS_PER_ADDRESS: positiveInt.max(10_000_000).default(250),
  ANONYMOUS_MAX_CONNECTIONS: positiveInt.max(10_000_000).default(10_000),
  TOKEN_EXPIRY_WARNING_SECONDS: nonNegativeInt.max(3_600).default(60),
  SESSION_REVOCATION_TTL_SECONDS: positiveInt.max(365 * 24 * 3600).default(24 * 3600),
  HTTP_MAX_BODY_BYTES: positiveInt.max(16 * 1024 * 1024).default(256 * 1024),
  INTROSPECTION: booleanFromEnv.optional(),
  // Comma-separated manifest paths (graphql-codegen persisted-documents.json); read in loadConfig.
  TRUSTED_DOCUMENTS: z
    .string()
    .transform((value) => value.split(',').map((path) => path.trim()))
    .refine((paths) => paths.every((path) => path.length > 0), 'a comma-separated list of manifest paths, none empty')
    .optional(),
  RATE_LIMIT_WINDOW_MS: positiveInt.max(3_600_000).default(60_000),
  RATE_LIMIT_OPERATIONS: positiveInt.max(1_000_000).default(300),
  RATE_LIMIT_CHAT_MESSAGES: positiveInt.max(1_000_000).default(20),
  RATE_LIMIT_DISCONNECT_AFTER: positiveInt.max(1_000_000).default(100),
  QUERY_MAX_DEPTH: positiveInt.max(100).default(10),
  QUERY_MAX_ALIASES: nonNegativeInt.max(1_000).default(15),
  QUERY_MAX_DIRECTIVES: nonNegativeInt.max(1_000).default(20),
  QUERY_MAX_TOKENS: positiveInt.max(100_000).default(2_000),
  QUERY_MAX_COST: positiveInt.max(1_000_000).default(5_000),
  SHUTDOWN_TIMEOUT_MS: positiveInt.max(300_000).default(10_000),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(9464),
  METRICS_TOKEN: z.string().min(16, 'at least 16 characters').max(512).optional(),
});

/** Every variable Tidings reads (for the documentation check). */
export const ENVIRONMENT_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export type Role = (typeof ROLE_VALUES)[number];

export type DevelopmentFeature = 'devTokens' | 'graphiql' | 'introspection' | 'errorDetails';
export interface FeatureDecision {
  readonly enabled: boolean;
  /** What decided it: the variable that was set, or the public development secret. */
  readonly because: string;
}
export const ROLES: readonly Role[] = ROLE_VALUES;

export type AuthConfig =
  | {
      readonly kind: 'secret';
      readonly secret: Uint8Array;
      /** True when running on DEVELOPMENT_JWT_SECRET; logged loudly at start-up. */
      readonly isDevelopmentSecret: boolean;
      readonly algorithms: readonly string[];
      readonly issuer: string | undefined;
      readonly audience: string | undefined;
      readonly clockToleranceSeconds: number;
      readonly allowAnonymous: boolean;
      /** Verified tokens remembered (0: none), see VerifiedTokens. */
      readonly verifiedTokenCacheSize: number;
    }
  | {
      readonly kind: 'jwks';
      readonly jwksUrl: URL;
      readonly algorithms: readonly string[];
      readonly issuer: string | undefined;
      readonly audience: string | undefined;
      readonly clockToleranceSeconds: number;
      readonly allowAnonymous: boolean;
      readonly verifiedTokenCacheSize: number;
      /** How long a token verified with a JWKS key is trusted without checking its key again (0: never remembered). */
      readonly jwksVerifiedTokenMaxAgeSeconds: number;
    };

export interface Config {
  readonly environment: 'development' | 'production' | 'test';
  readonly instanceId: string;
  /** `trustProxy`: the proxies whose X-Forwarded-For is believed (a list, or a hop count). */
  readonly http: { readonly host: string; readonly port: number; readonly trustProxy: readonly string[] | number };
  /**
   * `format`: `json`, one object per line, or `pretty`, human-readable lines for a developer's
   * terminal. Unset, `pretty` only on the public development secret, like the development features.
   */
  readonly log: { readonly level: string; readonly format: 'pretty' | 'json' };
  readonly auth: AuthConfig;
  /** `url` undefined means the embedded in-memory pub/sub (one instance only). */
  readonly redis: { readonly url: string | undefined; readonly prefix: string };
  /**
   * RabbitMQ ingress (docs/INGRESS.md), off when AMQP_URL is unset. Every instance consumes the
   * one durable `queue` bound to `exchange`; poison messages go to `deadLetterExchange`, which
   * feeds `deadLetterQueue`.
   */
  readonly amqp:
    | {
        readonly url: string;
        readonly exchange: string;
        readonly queue: string;
        readonly deadLetterExchange: string;
        readonly deadLetterQueue: string;
        readonly prefetch: number;
        /** How long a consumed message's event id is remembered, so a redelivery is not published twice. */
        readonly dedupeWindowMs: number;
        /** The currency of `booking.totalPrice`, which the booking service sends as a plain number. */
        readonly bookingCurrency: string;
      }
    | undefined;
  /**
   * OpenTelemetry tracing, on when an OTLP endpoint is set (and OTEL_SDK_DISABLED is not):
   * spans for publishing and for each instance's delivery, sampled by `sampler` with `ratio`.
   */
  readonly tracing:
    | {
        readonly serviceName: string;
        readonly sampler: 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';
        /** The ratio of the traceidratio samplers (OTEL_TRACES_SAMPLER_ARG, default 1). */
        readonly ratio: number;
        /** How long finished spans wait to be sent in a batch (OTEL_BSP_SCHEDULE_DELAY). */
        readonly exportDelayMs: number;
        /** Where spans are sent: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces (OTLP over HTTP, JSON). */
        readonly endpoint: string;
      }
    | undefined;
  /** `maxBatch`: the most items one bulk publishing mutation (publishPrices, …) takes. */
  readonly events: { readonly maxBytes: number; readonly maxBatch: number };
  readonly directory: { readonly membershipCacheMs: number; readonly chatSessionTtlSeconds: number };
  readonly graphiql: { readonly enabled: boolean };
  /**
   * TRUSTED_DOCUMENTS: every caller but the `service` role may run only these documents, sent by
   * hash (docs/SECURITY.md "Trusted documents"). Undefined: any valid document runs.
   */
  readonly trustedDocuments: { readonly manifests: readonly string[]; readonly documents: ReadonlyMap<string, string> } | undefined;
  /** GET /dev/token mints tokens for demo users: development only, never in production. */
  readonly devTokens: { readonly enabled: boolean };
  /** Unexpected errors carry their original message and stack to clients (`originalError`): development only. */
  readonly errorDetails: { readonly enabled: boolean };
  /**
   * Each development convenience, whether it is on and why: logged in one line at start-up.
   * None is ever on because a variable is absent, except with the public development secret
   * (then anyone can mint any token anyway, and production refuses to start).
   */
  readonly developmentFeatures: Readonly<Record<DevelopmentFeature, FeatureDecision>>;
  /** The demo web app (client/app), served at /app/ when it has been built. */
  readonly webApp: { readonly enabled: boolean; readonly directory: string };
  readonly chat: { readonly responder: 'builtin' | 'external'; readonly chunkDelayMs: number };
  readonly typing: { readonly throttleMs: number };
  /**
   * Presence (src/presence/): entries live `ttlMs` unless refreshed (every ttl/3), so a dead
   * instance's users are gone within ttl plus a sweep (every ttl/6); `graceMs` keeps a user present
   * after their last hold ends; changes of one scope go out once per `coalesceMs`.
   */
  readonly presence: { readonly ttlMs: number; readonly graceMs: number; readonly coalesceMs: number; readonly maxUserIds: number };
  readonly websocket: {
    readonly keepAliveMs: number;
    readonly connectionInitTimeoutMs: number;
    readonly maxPayloadBytes: number;
    /**
     * Messages of any kind (subscribe, complete, ping, pong, …) a client may send: a bucket of
     * `messageBurst` refilled at `maxMessagesPerSecond`; a client that empties it is closed (4290).
     */
    readonly maxMessagesPerSecond: number;
    readonly messageBurst: number;
    readonly maxSubscriptionsPerConnection: number;
    /** WebSocket connections one user may hold across every instance. */
    readonly maxConnectionsPerUser: number;
    /** Anonymous WebSocket connections from one address (an IPv6 /64) across every instance. */
    readonly maxAnonymousConnectionsPerAddress: number;
    /** Anonymous WebSocket connections this instance holds at once, whoever opened them. */
    readonly maxAnonymousConnections: number;
    /** Bytes a socket may have waiting to be sent before it counts as a slow consumer. */
    readonly maxBufferedBytes: number;
    /** How long a socket may stay over maxBufferedBytes before it is closed (4508). */
    readonly slowConsumerGraceMs: number;
    /** The client is warned (a protocol ping) this long before its token expires. */
    readonly tokenExpiryWarningMs: number;
  };
  readonly limits: {
    readonly httpMaxBodyBytes: number;
    readonly introspection: boolean;
    /** Subscriptions one user may have open across every transport and instance. */
    readonly maxSubscriptionsPerUser: number;
    /** Subscriptions anonymous callers from one address (an IPv6 /64) may have open, likewise. */
    readonly maxSubscriptionsPerAddress: number;
    /** Sliding-window budgets per user (per IP when anonymous), across instances with Redis. */
    readonly rate: {
      readonly windowMs: number;
      readonly operations: number;
      readonly chatMessages: number;
      /** Refused operations within one window after which a WebSocket is closed (4290). */
      readonly disconnectAfter: number;
    };
    readonly query: { readonly maxDepth: number; readonly maxAliases: number; readonly maxDirectives: number; readonly maxTokens: number; readonly maxCost: number };
  };
  readonly shutdown: { readonly timeoutMs: number };
  /**
   * The operator listener serving /metrics and /stats, apart from client traffic: loopback by
   * default; with `token`, requests need `Authorization: Bearer <token>`.
   */
  readonly ops: { readonly host: string; readonly port: number; readonly token: string | undefined };
  /** How long a revocation of a user's sessions is remembered: at least your longest token lifetime. */
  readonly sessions: { readonly revocationTtlSeconds: number };
}

/** Thrown by loadConfig with every problem found, one per line. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const SYMMETRIC_ALGORITHMS = new Set(['HS256', 'HS384', 'HS512']);
/** JWS algorithms jose verifies with a public key from a JWKS. */
const ASYMMETRIC_ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']);

/**
 * Checks that span several variables. They read the raw strings, so they run (and report) even
 * when a single variable failed the schema: an operator sees every problem in one go.
 */
function crossFieldProblems(raw: Record<string, string>): string[] {
  const problems: string[] = [];
  const isProduction = raw['NODE_ENV'] === 'production';
  const secret = raw['JWT_SECRET'];
  const jwksUrl = raw['JWT_JWKS_URL'];
  if (secret && jwksUrl) problems.push('JWT_SECRET and JWT_JWKS_URL: set one, not both');
  if (isProduction && !secret && !jwksUrl) problems.push('JWT_SECRET or JWT_JWKS_URL: one is required when NODE_ENV=production');
  if (isProduction && secret === DEVELOPMENT_JWT_SECRET) {
    problems.push('JWT_SECRET: the development secret may not be used when NODE_ENV=production');
  }
  if (isProduction && isTrue(raw['DEV_TOKENS'])) {
    problems.push('DEV_TOKENS: minting tokens over HTTP is for development only, never when NODE_ENV=production');
  }
  if (isProduction && isTrue(raw['ERROR_DETAILS'])) {
    problems.push('ERROR_DETAILS: showing clients the details of unexpected errors is for development only, never when NODE_ENV=production');
  }
  if (jwksUrl && isTrue(raw['DEV_TOKENS'])) {
    problems.push('DEV_TOKENS: needs JWT_SECRET (tokens cannot be minted for a JWKS issuer)');
  }
  if (isProduction && jwksUrl && !raw['JWT_AUDIENCE']) {
    // An identity provider issues tokens for many applications; without an audience check,
    // a token minted for another one (with its roles) would be accepted here.
    problems.push('JWT_AUDIENCE: required with JWT_JWKS_URL when NODE_ENV=production');
  }
  if (isProduction && jwksUrl && !jwksUrl.startsWith('https://')) {
    problems.push('JWT_JWKS_URL: must be https when NODE_ENV=production (keys fetched over plain HTTP can be swapped)');
  }
  if (raw['AMQP_URL'] && !raw['AMQP_BOOKING_CURRENCY']) {
    // booking.* messages carry a plain number: the gateway never guesses its currency.
    problems.push('AMQP_BOOKING_CURRENCY: required with AMQP_URL (the currency of booking.totalPrice, e.g. EUR)');
  }
  if (raw['AMQP_URL'] && (raw['AMQP_EXCHANGE'] ?? 'tidings_events') === `${raw['AMQP_QUEUE'] ?? 'tidings.ingress'}.dead-letter`) {
    problems.push('AMQP_EXCHANGE: may not be the dead-letter exchange <AMQP_QUEUE>.dead-letter');
  }
  const usesJwks = jwksUrl !== undefined && secret === undefined;
  const algorithms = algorithmsFrom(raw['JWT_ALGORITHMS'], usesJwks);
  if (algorithms.length === 0) problems.push('JWT_ALGORITHMS: list at least one algorithm');
  for (const algorithm of algorithms) {
    if (algorithm.toLowerCase() === 'none') {
      problems.push('JWT_ALGORITHMS: "none" is never accepted');
    } else if (!SYMMETRIC_ALGORITHMS.has(algorithm) && !ASYMMETRIC_ALGORITHMS.has(algorithm)) {
      problems.push(`JWT_ALGORITHMS: unknown algorithm "${algorithm}" (names are case-sensitive, e.g. HS256, RS256, ES256)`);
    } else if (usesJwks && SYMMETRIC_ALGORITHMS.has(algorithm)) {
      problems.push(`JWT_ALGORITHMS: ${algorithm} is symmetric and cannot be used with JWT_JWKS_URL`);
    } else if (!usesJwks && !SYMMETRIC_ALGORITHMS.has(algorithm)) {
      problems.push(`JWT_ALGORITHMS: ${algorithm} needs a public key; use JWT_JWKS_URL, or HS256/384/512 with JWT_SECRET`);
    }
  }
  return problems;
}

function isTrue(value: string | undefined): boolean {
  return ['true', '1'].includes((value ?? '').trim().toLowerCase());
}

/**
 * A development feature is on when its variable says so, or, with the variable unset, only while
 * the gateway runs on the public development secret (which production refuses). A real secret or
 * a JWKS with nothing else set gets none of them: forgetting NODE_ENV must never open anything.
 */
function decideFeature(variable: string, value: boolean | undefined, onDevelopmentSecret: boolean): FeatureDecision {
  if (value !== undefined) return { enabled: value, because: `${variable}=${value}` };
  return onDevelopmentSecret
    ? { enabled: true, because: 'JWT_SECRET unset: the public development secret' }
    : { enabled: false, because: `${variable} unset` };
}

function algorithmsFrom(list: string | undefined, usesJwks: boolean): string[] {
  if (list === undefined) return usesJwks ? ['RS256', 'ES256'] : ['HS256'];
  return list
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

/**
 * Reads and validates the environment once. Collects every problem (schema and cross-field)
 * before throwing, so an operator fixes them all in one go.
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  // Empty strings count as unset: `FOO= npm start` should not fail validation of FOO.
  const cleaned = Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''),
  );
  const parsed = envSchema.safeParse(cleaned);
  // Read here so that a manifest's problems are listed with every other one.
  const manifests = parsed.success && parsed.data.TRUSTED_DOCUMENTS ? readTrustedDocumentManifests(parsed.data.TRUSTED_DOCUMENTS) : undefined;
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`)),
    ...crossFieldProblems(cleaned),
    ...(manifests?.problems ?? []),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const vars = parsed.data;
  const usesJwks = vars.JWT_JWKS_URL !== undefined && vars.JWT_SECRET === undefined;
  const algorithms = algorithmsFrom(cleaned['JWT_ALGORITHMS'], usesJwks);

  const common = {
    algorithms,
    issuer: vars.JWT_ISSUER,
    audience: vars.JWT_AUDIENCE,
    clockToleranceSeconds: vars.JWT_CLOCK_TOLERANCE_SECONDS,
    allowAnonymous: vars.ALLOW_ANONYMOUS,
    verifiedTokenCacheSize: vars.VERIFIED_TOKEN_CACHE_SIZE,
  };
  const auth: AuthConfig = usesJwks
    ? { kind: 'jwks', jwksUrl: new URL(vars.JWT_JWKS_URL as string), ...common, jwksVerifiedTokenMaxAgeSeconds: vars.JWKS_VERIFIED_TOKEN_MAX_AGE_SECONDS }
    : {
        kind: 'secret',
        secret: new TextEncoder().encode(vars.JWT_SECRET ?? DEVELOPMENT_JWT_SECRET),
        isDevelopmentSecret: (vars.JWT_SECRET ?? DEVELOPMENT_JWT_SECRET) === DEVELOPMENT_JWT_SECRET,
        ...common,
      };

  const onDevelopmentSecret = auth.kind === 'secret' && auth.isDevelopmentSecret;
  const developmentFeatures: Record<DevelopmentFeature, FeatureDecision> = {
    devTokens: decideFeature('DEV_TOKENS', vars.DEV_TOKENS, onDevelopmentSecret),
    graphiql: decideFeature('GRAPHIQL', vars.GRAPHIQL, onDevelopmentSecret),
    introspection: decideFeature('INTROSPECTION', vars.INTROSPECTION, onDevelopmentSecret),
    errorDetails: decideFeature('ERROR_DETAILS', vars.ERROR_DETAILS, onDevelopmentSecret),
  };

  return {
    environment: vars.NODE_ENV,
    instanceId: vars.INSTANCE_ID ?? randomUUID().slice(0, 8),
    http: { host: vars.HOST, port: vars.PORT, trustProxy: vars.TRUST_PROXY },
    log: { level: vars.LOG_LEVEL, format: vars.LOG_FORMAT ?? (onDevelopmentSecret ? 'pretty' : 'json') },
    auth,
    redis: { url: vars.REDIS_URL, prefix: vars.REDIS_PREFIX },
    amqp: vars.AMQP_URL
      ? {
          url: vars.AMQP_URL,
          exchange: vars.AMQP_EXCHANGE,
          queue: vars.AMQP_QUEUE,
          deadLetterExchange: `${vars.AMQP_QUEUE}.dead-letter`,
          deadLetterQueue: `${vars.AMQP_QUEUE}.dead-letter`,
          prefetch: vars.AMQP_PREFETCH,
          dedupeWindowMs: vars.AMQP_DEDUPE_WINDOW_SECONDS * 1000,
          bookingCurrency: vars.AMQP_BOOKING_CURRENCY as string,
        }
      : undefined,
    tracing:
      (vars.OTEL_EXPORTER_OTLP_ENDPOINT || vars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && !vars.OTEL_SDK_DISABLED
        ? {
            serviceName: vars.OTEL_SERVICE_NAME,
            sampler: vars.OTEL_TRACES_SAMPLER,
            ratio: vars.OTEL_TRACES_SAMPLER_ARG ?? 1,
            exportDelayMs: vars.OTEL_BSP_SCHEDULE_DELAY,
            endpoint: vars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? `${(vars.OTEL_EXPORTER_OTLP_ENDPOINT as string).replace(/\/+$/, '')}/v1/traces`,
          }
        : undefined,
    events: { maxBytes: vars.EVENT_MAX_BYTES, maxBatch: vars.PUBLISH_MAX_BATCH },
    directory: { membershipCacheMs: vars.MEMBERSHIP_CACHE_MS, chatSessionTtlSeconds: vars.CHAT_SESSION_TTL_SECONDS },
    graphiql: { enabled: developmentFeatures.graphiql.enabled },
    trustedDocuments: manifests && vars.TRUSTED_DOCUMENTS ? { manifests: vars.TRUSTED_DOCUMENTS, documents: manifests.documents } : undefined,
    devTokens: { enabled: developmentFeatures.devTokens.enabled },
    errorDetails: { enabled: developmentFeatures.errorDetails.enabled },
    developmentFeatures,
    webApp: {
      enabled: vars.WEB_APP,
      directory: vars.WEB_APP_DIR ?? fileURLToPath(new URL('../../client/app/dist', import.meta.url)),
    },
    chat: { responder: vars.CHAT_RESPONDER, chunkDelayMs: vars.CHAT_CHUNK_DELAY_MS },
    typing: { throttleMs: vars.TYPING_THROTTLE_MS },
    presence: {
      ttlMs: vars.PRESENCE_TTL_SECONDS * 1000,
      graceMs: vars.PRESENCE_GRACE_MS,
      coalesceMs: vars.PRESENCE_COALESCE_MS,
      maxUserIds: vars.PRESENCE_MAX_USER_IDS,
    },
    websocket: {
      keepAliveMs: vars.WS_KEEP_ALIVE_MS,
      connectionInitTimeoutMs: vars.WS_CONNECTION_INIT_TIMEOUT_MS,
      maxPayloadBytes: vars.WS_MAX_PAYLOAD_BYTES,
      maxMessagesPerSecond: vars.WS_MAX_MESSAGES_PER_SECOND,
      messageBurst: vars.WS_MESSAGE_BURST,
      maxSubscriptionsPerConnection: vars.WS_MAX_SUBSCRIPTIONS_PER_CONNECTION,
      maxConnectionsPerUser: vars.WS_MAX_CONNECTIONS_PER_USER,
      maxAnonymousConnectionsPerAddress: vars.ANONYMOUS_MAX_CONNECTIONS_PER_ADDRESS,
      maxAnonymousConnections: vars.ANONYMOUS_MAX_CONNECTIONS,
      maxBufferedBytes: vars.WS_MAX_BUFFERED_BYTES,
      slowConsumerGraceMs: vars.WS_SLOW_CONSUMER_GRACE_MS,
      tokenExpiryWarningMs: vars.TOKEN_EXPIRY_WARNING_SECONDS * 1000,
    },
    limits: {
      httpMaxBodyBytes: vars.HTTP_MAX_BODY_BYTES,
      introspection: developmentFeatures.introspection.enabled,
      maxSubscriptionsPerUser: vars.MAX_SUBSCRIPTIONS_PER_USER,
      maxSubscriptionsPerAddress: vars.ANONYMOUS_MAX_SUBSCRIPTIONS_PER_ADDRESS,
      rate: {
        windowMs: vars.RATE_LIMIT_WINDOW_MS,
        operations: vars.RATE_LIMIT_OPERATIONS,
        chatMessages: vars.RATE_LIMIT_CHAT_MESSAGES,
        disconnectAfter: vars.RATE_LIMIT_DISCONNECT_AFTER,
      },
      query: {
        maxDepth: vars.QUERY_MAX_DEPTH,
        maxAliases: vars.QUERY_MAX_ALIASES,
        maxDirectives: vars.QUERY_MAX_DIRECTIVES,
        maxTokens: vars.QUERY_MAX_TOKENS,
        maxCost: vars.QUERY_MAX_COST,
      },
    },
    shutdown: { timeoutMs: vars.SHUTDOWN_TIMEOUT_MS },
    ops: { host: vars.METRICS_HOST, port: vars.METRICS_PORT, token: vars.METRICS_TOKEN },
    sessions: { revocationTtlSeconds: vars.SESSION_REVOCATION_TTL_SECONDS },
  };
}
