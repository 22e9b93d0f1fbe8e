import { pino, type Bindings, type DestinationStream, type LogFn, type Logger, type LoggerOptions } from 'pino';
import { PinoPretty } from 'pino-pretty';
import type { YogaLogger } from 'graphql-yoga';

/**
 * Logs on stdout: JSON lines (`json`), or human-readable lines for a developer's terminal
 * (`pretty`: time, level, message, then each field on its own line, without the instance id).
 * Both are written synchronously in this process, so nothing is lost when it crashes. Redaction
 * happens before either format sees a line: tokens never reach a log line, and we log rejection
 * reasons only. `destination` (tests) replaces stdout.
 */
export function createLogger(options: {
  level: string;
  instanceId: string;
  format: 'pretty' | 'json';
  destination?: DestinationStream | NodeJS.WritableStream;
}): Logger {
  const pinoOptions: LoggerOptions = {
    level: options.level,
    base: { instance: options.instanceId },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.authorization', '*.Authorization', 'headers.authorization', 'connectionParams'], remove: true },
  };
  if (options.format === 'pretty') {
    // A stream in this process, not a worker-thread transport: written before logger calls return.
    const pretty = PinoPretty({
      sync: true,
      destination: options.destination ?? 1,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'instance',
      // Colours only on a terminal (pino-pretty's default), never into a stream a test reads.
      ...(options.destination ? { colorize: false } : {}),
    });
    return pino(pinoOptions, pretty);
  }
  return options.destination ? pino(pinoOptions, options.destination as DestinationStream) : pino(pinoOptions);
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

/** What an operation logs through: pino's level methods (a Logger is one). */
export interface OperationLog {
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
}

type AnyLogFn = (...args: unknown[]) => void;

/**
 * A child logger made when first written to: most operations never log, and pino's child() is a
 * few kilobytes of allocation (bindings, redaction, serializers) per operation even when nothing
 * is written. A plain property, not a getter: Yoga copies the context, which would call it.
 */
export class LazyChildLogger implements OperationLog {
  private child: Logger | undefined = undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
  ) {}

  private get logger(): Logger {
    return (this.child ??= this.parent.child(this.bindings));
  }

  debug(...args: unknown[]): void {
    (this.logger.debug as AnyLogFn).apply(this.logger, args);
  }

  info(...args: unknown[]): void {
    (this.logger.info as AnyLogFn).apply(this.logger, args);
  }

  warn(...args: unknown[]): void {
    (this.logger.warn as AnyLogFn).apply(this.logger, args);
  }

  error(...args: unknown[]): void {
    (this.logger.error as AnyLogFn).apply(this.logger, args);
  }
}
