import { pino, type Logger } from 'pino';
import type { YogaLogger } from 'graphql-yoga';

/** Structured JSON logs on stdout. Tokens never reach a log line: we log rejection reasons only. */
export function createLogger(options: { level: string; instanceId: string }): Logger {
  return pino({
    level: options.level,
    base: { instance: options.instanceId },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.authorization', '*.Authorization', 'headers.authorization', 'connectionParams'], remove: true },
  });
}

/** Routes Yoga's own log calls into pino. */
export function yogaLoggerFrom(logger: Logger): YogaLogger {
  const forward =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]) => {
      const [first, ...rest] = args;
      if (first instanceof Error) logger[level]({ err: first, details: rest.length ? rest : undefined }, first.message);
      else logger[level]({ details: rest.length ? rest : undefined }, String(first));
    };
  return { debug: forward('debug'), info: forward('info'), warn: forward('warn'), error: forward('error') };
}
