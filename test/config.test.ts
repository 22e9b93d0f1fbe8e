import { describe, expect, it } from 'vitest';
import { ConfigError, DEVELOPMENT_JWT_SECRET, loadConfig, type Config } from '../src/config/config.js';

const SECRET_32 = 'a'.repeat(32);
const JWKS_URL = 'https://idp.example.com/.well-known/jwks.json';

/** Runs loadConfig and returns the ConfigError it throws; fails the test if it does not throw one. */
function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  let thrown: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ConfigError);
  const error = thrown as ConfigError;
  expect(error.name).toBe('ConfigError');
  return error.problems;
}

function secretAuth(config: Config) {
  if (config.auth.kind !== 'secret') throw new Error(`expected secret auth, got ${config.auth.kind}`);
  return config.auth;
}

function jwksAuth(config: Config) {
  if (config.auth.kind !== 'jwks') throw new Error(`expected jwks auth, got ${config.auth.kind}`);
  return config.auth;
}

describe('loadConfig defaults', () => {
  it('uses documented defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config.environment).toBe('development');
    expect(config.http).toEqual({ host: '0.0.0.0', port: 4000, trustProxy: [] });
    expect(config.log.level).toBe('info');
    expect(config.redis).toEqual({ url: undefined, prefix: 'tidings:' });
    expect(config.amqp).toBeUndefined();
    expect(config.graphiql.enabled).toBe(true);
    expect(config.chat).toEqual({ responder: 'builtin', chunkDelayMs: 60 });
    expect(config.typing.throttleMs).toBe(1_500);
    expect(config.websocket).toEqual({
      keepAliveMs: 12_000,
      connectionInitTimeoutMs: 3_000,
      maxPayloadBytes: 256 * 1024,
      maxMessagesPerSecond: 50,
      messageBurst: 200,
      maxSubscriptionsPerConnection: 100,
      maxConnectionsPerUser: 20,
      maxAnonymousConnectionsPerAddress: 50,
      maxAnonymousConnections: 10_000,
      maxBufferedBytes: 1024 * 1024,
      slowConsumerGraceMs: 5_000,
      tokenExpiryWarningMs: 60_000,
    });
    expect(config.limits).toMatchObject({
      httpMaxBodyBytes: 256 * 1024,
      introspection: true,
      maxSubscriptionsPerUser: 500,
      maxSubscriptionsPerAddress: 250,
      rate: { windowMs: 60_000, operations: 300, chatMessages: 20, disconnectAfter: 100 },
      query: { maxDepth: 10, maxAliases: 15, maxCost: 5_000 },
    });
    expect(config.sessions.revocationTtlSeconds).toBe(86_400);
    expect(config.shutdown.timeoutMs).toBe(10_000);
    expect(config.instanceId).toMatch(/^[0-9a-f]{8}$/);
  });

  it('falls back to the flagged development secret outside production', () => {
    for (const NODE_ENV of ['development', 'test'] as const) {
      const auth = secretAuth(loadConfig({ NODE_ENV }));
      expect(auth.isDevelopmentSecret).toBe(true);
      expect(new TextDecoder().decode(auth.secret)).toBe(DEVELOPMENT_JWT_SECRET);
      expect(auth.algorithms).toEqual(['HS256']);
      expect(auth.issuer).toBeUndefined();
      expect(auth.audience).toBeUndefined();
      expect(auth.clockToleranceSeconds).toBe(5);
      expect(auth.allowAnonymous).toBe(false);
    }
  });

  it('flags the development secret even when it is set explicitly outside production', () => {
    const auth = secretAuth(loadConfig({ JWT_SECRET: DEVELOPMENT_JWT_SECRET }));
    expect(auth.isDevelopmentSecret).toBe(true);
  });

  it('uses JWT_SECRET when given and does not flag it', () => {
    const auth = secretAuth(loadConfig({ JWT_SECRET: SECRET_32 }));
    expect(auth.isDevelopmentSecret).toBe(false);
    expect(new TextDecoder().decode(auth.secret)).toBe(SECRET_32);
    expect(auth.algorithms).toEqual(['HS256']);
  });

  it('disables GraphiQL by default in production and lets GRAPHIQL override either way', () => {
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET_32 }).graphiql.enabled).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET_32, GRAPHIQL: 'true' }).graphiql.enabled).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).graphiql.enabled).toBe(true);
    expect(loadConfig({ NODE_ENV: 'development', GRAPHIQL: 'false' }).graphiql.enabled).toBe(false);
  });

  it('turns no development feature on for a real secret or a JWKS, whatever NODE_ENV says', () => {
    for (const env of [{ JWT_SECRET: SECRET_32 }, { JWT_SECRET: SECRET_32, NODE_ENV: 'development' }, { JWT_JWKS_URL: JWKS_URL }]) {
      const config = loadConfig(env);
      expect(config.devTokens.enabled).toBe(false);
      expect(config.graphiql.enabled).toBe(false);
      expect(config.limits.introspection).toBe(false);
      expect(config.errorDetails.enabled).toBe(false);
      expect(Object.values(config.developmentFeatures).every((feature) => !feature.enabled)).toBe(true);
    }
  });

  it('turns development features on with the public development secret, and says why', () => {
    const config = loadConfig({});
    expect(config.devTokens.enabled && config.graphiql.enabled && config.limits.introspection && config.errorDetails.enabled).toBe(true);
    expect(config.developmentFeatures.devTokens).toEqual({ enabled: true, because: 'JWT_SECRET unset: the public development secret' });
    const chosen = loadConfig({ JWT_SECRET: SECRET_32, DEV_TOKENS: 'true', GRAPHIQL: 'true' });
    expect(chosen.developmentFeatures.devTokens).toEqual({ enabled: true, because: 'DEV_TOKENS=true' });
    expect(chosen.developmentFeatures.introspection).toEqual({ enabled: false, because: 'INTROSPECTION unset' });
    expect(loadConfig({ ERROR_DETAILS: 'false' }).errorDetails.enabled).toBe(false);
  });

  it('refuses DEV_TOKENS=true and ERROR_DETAILS=true with NODE_ENV=production', () => {
    const problems = problemsOf({ NODE_ENV: 'production', JWT_SECRET: SECRET_32, DEV_TOKENS: 'true', ERROR_DETAILS: '1' });
    expect(problems).toEqual([expect.stringMatching(/^DEV_TOKENS: /), expect.stringMatching(/^ERROR_DETAILS: /)]);
  });

  it('reads explicit values', () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'silent',
      INSTANCE_ID: 'gw-1',
      REDIS_URL: 'rediss://cache.internal:6380/2',
      REDIS_PREFIX: 'app:tidings.',
      JWT_ISSUER: 'https://idp.example.com',
      JWT_AUDIENCE: 'tidings',
      JWT_CLOCK_TOLERANCE_SECONDS: '0',
    });
    expect(config.environment).toBe('test');
    expect(config.http).toEqual({ host: '127.0.0.1', port: 0, trustProxy: [] });
    expect(config.log.level).toBe('silent');
    expect(config.instanceId).toBe('gw-1');
    expect(config.redis).toEqual({ url: 'rediss://cache.internal:6380/2', prefix: 'app:tidings.' });
    expect(config.auth.issuer).toBe('https://idp.example.com');
    expect(config.auth.audience).toBe('tidings');
    expect(config.auth.clockToleranceSeconds).toBe(0);
  });

  it('reads the RabbitMQ ingress settings, with its defaults', () => {
    expect(loadConfig({ AMQP_URL: 'amqp://tidings:secret@rabbitmq:5672/%2F', AMQP_BOOKING_CURRENCY: 'EUR' }).amqp).toEqual({
      url: 'amqp://tidings:secret@rabbitmq:5672/%2F',
      exchange: 'tidings_events',
      queue: 'tidings.ingress',
      deadLetterExchange: 'tidings.ingress.dead-letter',
      deadLetterQueue: 'tidings.ingress.dead-letter',
      prefetch: 50,
      dedupeWindowMs: 600_000,
      bookingCurrency: 'EUR',
    });
    const custom = loadConfig({ AMQP_URL: 'amqps://rabbitmq', AMQP_EXCHANGE: 'hometrip_events', AMQP_QUEUE: 'gw', AMQP_PREFETCH: '5', AMQP_DEDUPE_WINDOW_SECONDS: '60', AMQP_BOOKING_CURRENCY: 'JPY' }).amqp;
    expect(custom).toMatchObject({ exchange: 'hometrip_events', queue: 'gw', deadLetterQueue: 'gw.dead-letter', prefetch: 5, dedupeWindowMs: 60_000, bookingCurrency: 'JPY' });
  });

  it('refuses RabbitMQ settings it cannot use, all in one error, and never guesses the booking currency', () => {
    expect(problemsOf({ AMQP_URL: 'amqp://rabbitmq' })).toEqual([
      'AMQP_BOOKING_CURRENCY: required with AMQP_URL (the currency of booking.totalPrice, e.g. EUR)',
    ]);
    expect(problemsOf({ AMQP_URL: 'http://rabbitmq', AMQP_QUEUE: 'has space', AMQP_PREFETCH: '0', AMQP_BOOKING_CURRENCY: 'euro' })).toEqual([
      expect.stringMatching(/^AMQP_URL: /),
      'AMQP_QUEUE: letters, digits and _ . : - only (at most 200)',
      expect.stringMatching(/^AMQP_PREFETCH: /),
      'AMQP_BOOKING_CURRENCY: an ISO 4217 code such as EUR',
    ]);
    expect(problemsOf({ AMQP_URL: 'amqp://rabbitmq', AMQP_BOOKING_CURRENCY: 'XYZ', AMQP_EXCHANGE: 'amq.topic' })).toEqual([
      'AMQP_EXCHANGE: names starting with amq. are reserved by RabbitMQ',
      'AMQP_BOOKING_CURRENCY: an ISO 4217 code such as EUR',
    ]);
    expect(problemsOf({ AMQP_URL: 'amqp://rabbitmq', AMQP_BOOKING_CURRENCY: 'EUR', AMQP_QUEUE: 'q', AMQP_EXCHANGE: 'q.dead-letter' })).toEqual([
      'AMQP_EXCHANGE: may not be the dead-letter exchange <AMQP_QUEUE>.dead-letter',
    ]);
  });

  it('turns tracing on only with an OTLP endpoint, with the standard sampler variables', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing).toEqual({
      serviceName: 'tidings',
      sampler: 'parentbased_always_on',
      ratio: 1,
      exportDelayMs: 5_000,
      endpoint: 'http://collector:4318/v1/traces',
    });
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://tempo/otlp/v1/traces', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01', OTEL_SERVICE_NAME: 'gw' }).tracing,
    ).toMatchObject({ endpoint: 'https://tempo/otlp/v1/traces', sampler: 'parentbased_traceidratio', ratio: 0.01, serviceName: 'gw' });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing).toBeUndefined();
    expect(problemsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317', OTEL_TRACES_SAMPLER: 'sometimes', OTEL_TRACES_SAMPLER_ARG: '2' })).toEqual([
      expect.stringMatching(/^OTEL_EXPORTER_OTLP_ENDPOINT: /),
      expect.stringMatching(/^OTEL_TRACES_SAMPLER: /),
      expect.stringMatching(/^OTEL_TRACES_SAMPLER_ARG: /),
    ]);
  });

  it('logs for people (LOG_FORMAT=pretty) by default only on the public development secret, like the development features', () => {
    expect(loadConfig({}).log).toEqual({ level: 'info', format: 'pretty' });
    expect(loadConfig({ NODE_ENV: 'test' }).log.format).toBe('pretty');
    // A real key source gets JSON unless asked, whatever NODE_ENV says (or omits).
    expect(loadConfig({ JWT_SECRET: SECRET_32 }).log.format).toBe('json');
    expect(loadConfig({ JWT_SECRET: SECRET_32, DEV_TOKENS: 'true', GRAPHIQL: 'true' }).log.format).toBe('json');
    expect(loadConfig({ JWT_JWKS_URL: JWKS_URL }).log.format).toBe('json');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET_32 }).log.format).toBe('json');
    expect(loadConfig({ NODE_ENV: 'production', JWT_JWKS_URL: JWKS_URL, JWT_AUDIENCE: 'tidings' }).log.format).toBe('json');
    // Explicit values win both ways.
    expect(loadConfig({ LOG_FORMAT: 'json' }).log.format).toBe('json');
    expect(loadConfig({ NODE_ENV: 'development', LOG_FORMAT: 'json' }).log.format).toBe('json');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET_32, LOG_FORMAT: 'pretty' }).log.format).toBe('pretty');
    expect(loadConfig({ LOG_FORMAT: '' }).log.format).toBe('pretty');
  });

  it('refuses an unknown LOG_FORMAT, naming it, with the other problems', () => {
    expect(problemsOf({ LOG_FORMAT: 'xml', PORT: 'abc' })).toEqual([
      expect.stringMatching(/^PORT: /),
      'LOG_FORMAT: Invalid option: expected one of "pretty"|"json"',
    ]);
    expect(problemsOf({ LOG_FORMAT: 'JSON' })).toEqual([expect.stringMatching(/^LOG_FORMAT: /)]);
  });

  it('treats empty strings as unset', () => {
    const config = loadConfig({ NODE_ENV: '', PORT: '', LOG_LEVEL: '', REDIS_URL: '', JWT_SECRET: '', GRAPHIQL: '', ALLOW_ANONYMOUS: '' });
    expect(config.environment).toBe('development');
    expect(config.http.port).toBe(4000);
    expect(config.log.level).toBe('info');
    expect(config.redis.url).toBeUndefined();
    expect(config.graphiql.enabled).toBe(true);
    expect(secretAuth(config).isDevelopmentSecret).toBe(true);
    expect(config.auth.allowAnonymous).toBe(false);
  });

  it('does not count an empty JWT_SECRET as "both set" next to JWT_JWKS_URL', () => {
    const auth = jwksAuth(loadConfig({ NODE_ENV: 'production', JWT_SECRET: '', JWT_JWKS_URL: JWKS_URL, JWT_AUDIENCE: 'tidings' }));
    expect(auth.jwksUrl.href).toBe(JWKS_URL);
  });

  it('does not let an empty JWT_SECRET satisfy production', () => {
    expect(problemsOf({ NODE_ENV: 'production', JWT_SECRET: '' })).toEqual([
      'JWT_SECRET or JWT_JWKS_URL: one is required when NODE_ENV=production',
    ]);
  });
});

describe('loadConfig validation', () => {
  it('reports every schema problem in one ConfigError', () => {
    const problems = problemsOf({ PORT: 'abc', LOG_LEVEL: 'loud', REDIS_URL: 'http://x' });
    expect(problems).toHaveLength(3);
    expect(problems.filter((problem) => problem.startsWith('PORT: '))).toHaveLength(1);
    expect(problems.filter((problem) => problem.startsWith('LOG_LEVEL: '))).toHaveLength(1);
    expect(problems.filter((problem) => problem.startsWith('REDIS_URL: '))).toHaveLength(1);
  });

  it('puts every problem in the error message, one per line', () => {
    let message = '';
    try {
      loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud', REDIS_URL: 'http://x' });
    } catch (error) {
      message = (error as Error).message;
    }
    const lines = message.split('\n');
    expect(lines[0]).toBe('Invalid configuration:');
    expect(lines).toHaveLength(4);
    expect(lines.slice(1).map((line) => line.slice(0, line.indexOf(':')).trim())).toEqual(
      expect.arrayContaining(['- PORT', '- LOG_LEVEL', '- REDIS_URL']),
    );
  });

  it('reports every cross-field problem in one ConfigError', () => {
    expect(problemsOf({ JWT_SECRET: SECRET_32, JWT_JWKS_URL: JWKS_URL, JWT_ALGORITHMS: 'none' })).toEqual([
      'JWT_SECRET and JWT_JWKS_URL: set one, not both',
      'JWT_ALGORITHMS: "none" is never accepted',
    ]);
  });

  it('rejects out-of-range and unknown values', () => {
    expect(problemsOf({ PORT: '65536' })).toEqual([expect.stringMatching(/^PORT: /)]);
    expect(problemsOf({ PORT: '-1' })).toEqual([expect.stringMatching(/^PORT: /)]);
    expect(problemsOf({ NODE_ENV: 'staging' })).toEqual([expect.stringMatching(/^NODE_ENV: /)]);
    expect(problemsOf({ REDIS_PREFIX: 'has space' })).toEqual([
      'REDIS_PREFIX: letters, digits and _ . : - only (at most 64)',
    ]);
    expect(problemsOf({ JWT_JWKS_URL: 'ftp://idp.example.com/jwks' })).toEqual([expect.stringMatching(/^JWT_JWKS_URL: /)]);
    expect(problemsOf({ JWT_CLOCK_TOLERANCE_SECONDS: '301' })).toEqual([
      expect.stringMatching(/^JWT_CLOCK_TOLERANCE_SECONDS: /),
    ]);
    expect(loadConfig({ PORT: '65535' }).http.port).toBe(65_535);
    expect(problemsOf({ TRUST_PROXY: 'loopback, not-an-address' })).toEqual([expect.stringMatching(/^TRUST_PROXY: a hop count or /)]);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).http.trustProxy).toEqual(['loopback', '10.0.0.0/8']);
    expect(loadConfig({ TRUST_PROXY: '2' }).http.trustProxy).toBe(2);
    expect(loadConfig({}).http.trustProxy).toEqual([]);
  });

  it('requires JWT_SECRET or JWT_JWKS_URL in production', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([
      'JWT_SECRET or JWT_JWKS_URL: one is required when NODE_ENV=production',
    ]);
    expect(secretAuth(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET_32 })).isDevelopmentSecret).toBe(false);
    expect(jwksAuth(loadConfig({ NODE_ENV: 'production', JWT_JWKS_URL: JWKS_URL, JWT_AUDIENCE: 'tidings' })).jwksUrl.href).toBe(JWKS_URL);
  });

  it('requires an audience with a JWKS in production, so tokens for other applications are refused', () => {
    expect(problemsOf({ NODE_ENV: 'production', JWT_JWKS_URL: JWKS_URL })).toEqual([
      'JWT_AUDIENCE: required with JWT_JWKS_URL when NODE_ENV=production',
    ]);
  });

  it('refuses the development secret in production', () => {
    expect(problemsOf({ NODE_ENV: 'production', JWT_SECRET: DEVELOPMENT_JWT_SECRET })).toEqual([
      'JWT_SECRET: the development secret may not be used when NODE_ENV=production',
    ]);
  });

  it('refuses JWT_SECRET and JWT_JWKS_URL together', () => {
    expect(problemsOf({ JWT_SECRET: SECRET_32, JWT_JWKS_URL: JWKS_URL })).toEqual([
      'JWT_SECRET and JWT_JWKS_URL: set one, not both',
    ]);
  });

  it('requires JWT_SECRET to be at least 32 characters', () => {
    expect(problemsOf({ JWT_SECRET: 'a'.repeat(31) })).toEqual([
      'JWT_SECRET: must be at least 32 characters (HS256 needs a 256-bit key)',
    ]);
    expect(secretAuth(loadConfig({ JWT_SECRET: SECRET_32 })).secret).toHaveLength(32);
  });
});

describe('loadConfig JWT algorithms', () => {
  it('never accepts "none", in any case', () => {
    expect(problemsOf({ JWT_ALGORITHMS: 'none' })).toEqual(['JWT_ALGORITHMS: "none" is never accepted']);
    expect(problemsOf({ JWT_ALGORITHMS: 'HS256,NONE' })).toEqual(['JWT_ALGORITHMS: "none" is never accepted']);
    expect(problemsOf({ JWT_JWKS_URL: JWKS_URL, JWT_ALGORITHMS: 'RS256,None' })).toEqual([
      'JWT_ALGORITHMS: "none" is never accepted',
    ]);
  });

  it('refuses symmetric algorithms with JWKS', () => {
    expect(problemsOf({ JWT_JWKS_URL: JWKS_URL, JWT_ALGORITHMS: 'HS256' })).toEqual([
      'JWT_ALGORITHMS: HS256 is symmetric and cannot be used with JWT_JWKS_URL',
    ]);
    expect(problemsOf({ JWT_JWKS_URL: JWKS_URL, JWT_ALGORITHMS: 'RS256,HS512' })).toEqual([
      'JWT_ALGORITHMS: HS512 is symmetric and cannot be used with JWT_JWKS_URL',
    ]);
  });

  it('refuses asymmetric algorithms with a shared secret', () => {
    expect(problemsOf({ JWT_SECRET: SECRET_32, JWT_ALGORITHMS: 'RS256' })).toEqual([
      'JWT_ALGORITHMS: RS256 needs a public key; use JWT_JWKS_URL, or HS256/384/512 with JWT_SECRET',
    ]);
    // The development-secret fallback is a shared secret too.
    expect(problemsOf({ JWT_ALGORITHMS: 'ES256' })).toEqual([
      'JWT_ALGORITHMS: ES256 needs a public key; use JWT_JWKS_URL, or HS256/384/512 with JWT_SECRET',
    ]);
  });

  it('refuses an empty algorithm list', () => {
    expect(problemsOf({ JWT_ALGORITHMS: ' , ' })).toEqual(['JWT_ALGORITHMS: list at least one algorithm']);
  });

  it('defaults to RS256,ES256 with JWKS and HS256 with a secret', () => {
    const jwks = jwksAuth(loadConfig({ JWT_JWKS_URL: JWKS_URL }));
    expect(jwks.algorithms).toEqual(['RS256', 'ES256']);
    expect(jwks.jwksUrl).toBeInstanceOf(URL);
    expect(jwks.jwksUrl.href).toBe(JWKS_URL);
    expect(secretAuth(loadConfig({ JWT_SECRET: SECRET_32 })).algorithms).toEqual(['HS256']);
  });

  it('parses and trims an explicit list', () => {
    expect(jwksAuth(loadConfig({ JWT_JWKS_URL: JWKS_URL, JWT_ALGORITHMS: ' PS256 , ES384,, ' })).algorithms).toEqual([
      'PS256',
      'ES384',
    ]);
    expect(secretAuth(loadConfig({ JWT_SECRET: SECRET_32, JWT_ALGORITHMS: 'HS256,HS512' })).algorithms).toEqual([
      'HS256',
      'HS512',
    ]);
  });
});

describe('loadConfig booleans', () => {
  it.each([
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['false', false],
    ['False', false],
    ['0', false],
  ])('ALLOW_ANONYMOUS=%s parses to %s', (value, expected) => {
    expect(loadConfig({ ALLOW_ANONYMOUS: value }).auth.allowAnonymous).toBe(expected);
  });

  it('rejects other ALLOW_ANONYMOUS values', () => {
    expect(problemsOf({ ALLOW_ANONYMOUS: 'maybe' })).toEqual([expect.stringMatching(/^ALLOW_ANONYMOUS: /)]);
    expect(problemsOf({ ALLOW_ANONYMOUS: 'yes' })).toEqual([expect.stringMatching(/^ALLOW_ANONYMOUS: /)]);
    expect(problemsOf({ GRAPHIQL: 'on' })).toEqual([expect.stringMatching(/^GRAPHIQL: /)]);
  });
});

describe('loadConfig reports single-variable and cross-variable problems together', () => {
  it('lists a bad PORT and the missing production secret in one error', () => {
    const problems = problemsOf({ PORT: 'abc', NODE_ENV: 'production' });
    expect(problems).toEqual([
      expect.stringMatching(/^PORT: /),
      expect.stringMatching(/^JWT_SECRET or JWT_JWKS_URL: /),
    ]);
  });

  it.each(['rs256', 'RS999', 'HS257'])('rejects the unknown algorithm name %s', (algorithm) => {
    expect(problemsOf({ JWT_JWKS_URL: 'https://idp.example/jwks.json', JWT_ALGORITHMS: algorithm })).toEqual([
      expect.stringContaining(`unknown algorithm "${algorithm}"`),
    ]);
  });

  it('requires an https JWKS URL in production', () => {
    expect(problemsOf({ NODE_ENV: 'production', JWT_JWKS_URL: 'http://idp.example/jwks.json', JWT_AUDIENCE: 'tidings' })).toEqual([
      expect.stringMatching(/^JWT_JWKS_URL: must be https/),
    ]);
    expect(
      loadConfig({ NODE_ENV: 'production', JWT_JWKS_URL: 'https://idp.example/jwks.json', JWT_AUDIENCE: 'tidings' }).auth.kind,
    ).toBe('jwks');
  });
});
