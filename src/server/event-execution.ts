import { execute, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import type { Logger } from 'pino';

/**
 * How a subscription's selection runs on each event (and on the revoked marker): graphql-js'
 * `execute`, or, once its document has run often enough to pay for it, the same document
 * compiled by graphql-jit into a function. Both run the schema's own resolvers (field
 * authorization included). A compiled result without errors is delivered as graphql-js builds
 * it (`{ data }`); one with errors would not always be the same (graphql-jit goes on with a field's siblings after a non-null
 * error where graphql-js stops, and its errors carry locations but no nodes, which Yoga's SSE
 * serializer and error masking rebuild errors from), so the event is then executed again by
 * graphql-js and that result is the one delivered: resolvers are functions of the event and the
 * principal, and an error is the exception (a field the viewer may not see, a broken event).
 * `test/event-execution.test.ts` holds the two byte for byte to each other on every event type
 * and per-field rule, errors included.
 *
 * Why a threshold: compiling costs about 0.6 ms of CPU, a graphql-js execution of an event a few
 * µs, the compiled one a tenth of that. Compiling a document on its first event would let a
 * client with many distinct documents make the gateway compile for each of them on every event
 * it can cause (its own typing); after `compileAfter` executions of a document the compile costs
 * each of them less than one graphql-js execution. Documents are Yoga's parsed ones (one object
 * per query text), so the compiled function lives as long as the document does.
 */
export interface EventExecution {
  /** The document of `args` on `rootValue` (an event, or REVOKED), as graphql-js would execute it. */
  run(args: ExecutionArgs, rootValue: unknown): ExecutionResult | Promise<ExecutionResult>;
  /** Documents compiled (or tried) so far, for tests. */
  compilations(): number;
}

/** The default `compileAfter`. */
export const COMPILE_EVENT_DOCUMENTS_AFTER = 100;

interface DocumentPlan {
  /** Executions by graphql-js so far, of every operation of the document. */
  runs: number;
  /** Compiled per operation name ('' for none); null: graphql-jit refused it, graphql-js it stays. */
  readonly compiled: Map<string, CompiledQuery | null>;
  readonly schema: GraphQLSchema;
}

export function createEventExecution(options: {
  /** graphql-js executions of a document before it is compiled (0: compiled before its first). */
  readonly compileAfter: number;
  readonly logger: Logger;
}): EventExecution {
  const plans = new WeakMap<DocumentNode, DocumentPlan>();
  let compilations = 0;

  const compiledFor = (plan: DocumentPlan, args: ExecutionArgs): CompiledQuery | null | undefined => {
    const name = args.operationName ?? '';
    const known = plan.compiled.get(name);
    if (known !== undefined || plan.runs < options.compileAfter) return known;
    let compiled: CompiledQuery | null = null;
    compilations++;
    try {
      const made = compileQuery(args.schema, args.document, args.operationName ?? undefined, { disablingCapturingStackErrors: true });
      if (isCompiledQuery(made)) compiled = made;
      else options.logger.warn({ errors: made.errors?.map((error) => error.message) }, 'graphql-jit refused a subscription document; it runs on graphql-js');
    } catch (error) {
      options.logger.warn({ err: error }, 'graphql-jit failed on a subscription document; it runs on graphql-js');
    }
    plan.compiled.set(name, compiled);
    return compiled;
  };

  const run = (args: ExecutionArgs, rootValue: unknown): ExecutionResult | Promise<ExecutionResult> => {
    let plan = plans.get(args.document);
    // A document is compiled against one schema; another schema (tests build several apps) starts over.
    if (!plan || plan.schema !== args.schema) plans.set(args.document, (plan = { runs: 0, compiled: new Map(), schema: args.schema }));
    const compiled = compiledFor(plan, args);
    if (compiled) {
      const result = compiled.query(rootValue, args.contextValue, args.variableValues ?? {});
      const settled = (done: ExecutionResult) => (done.errors && done.errors.length > 0 ? execute({ ...args, rootValue }) : { data: done.data });
      return isPromise(result) ? result.then(settled) : settled(result);
    }
    plan.runs++;
    return execute({ ...args, rootValue });
  };
  return { run, compilations: () => compilations };
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
