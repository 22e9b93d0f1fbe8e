import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { testConfig } from './support/gateway.js';
import { LazyChildLogger } from '../src/logging/logger.js';

describe('LazyChildLogger', () => {
  it('writes through a child with the bindings, made only when first written to', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const parent = pino({ level: 'debug' }, sink);
    let children = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => (children++, child(...args))) as typeof parent.child;
    const log = new LazyChildLogger(parent, { operationId: 'op-1' });
    expect(children).toBe(0);
    log.info({ detail: 1 }, 'first');
    log.error('second %s', 'formatted');
    log.debug('third');
    expect(children).toBe(1);
    expect(lines.map(({ msg, operationId, detail, level }) => ({ msg, operationId, detail, level }))).toEqual([
      { msg: 'first', operationId: 'op-1', detail: 1, level: 30 },
      { msg: 'second formatted', operationId: 'op-1', detail: undefined, level: 50 },
      { msg: 'third', operationId: 'op-1', detail: undefined, level: 20 },
    ]);
  });
});

describe('start-up', () => {
  const capture = () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    return { lines, logger: pino({ level: 'info' }, sink) };
  };

  it('says in one line which development features are on and why', async () => {
    const { lines, logger } = capture();
    const app = buildApp(testConfig({ GRAPHIQL: 'true', DEV_TOKENS: 'true' }), { logger });
    await app.start();
    await app.stop();
    const featureLines = lines.filter((line) => String(line['msg']).startsWith('development features'));
    expect(featureLines).toHaveLength(1);
    expect(featureLines[0]).toMatchObject({
      level: 40,
      msg: 'development features on: GET /dev/token, GraphiQL',
      developmentFeatures: {
        devTokens: 'on (DEV_TOKENS=true)',
        graphiql: 'on (GRAPHIQL=true)',
        introspection: 'off (INTROSPECTION unset)',
        errorDetails: 'off (ERROR_DETAILS unset)',
      },
    });
  });

  it('says so when none is on', async () => {
    const { lines, logger } = capture();
    const app = buildApp(testConfig(), { logger });
    await app.start();
    await app.stop();
    expect(lines.filter((line) => String(line['msg']).startsWith('development features'))).toEqual([
      expect.objectContaining({ level: 30, msg: 'development features: none on' }),
    ]);
  });
});
