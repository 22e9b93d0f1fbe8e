import { getOperationAST, GraphQLError, type ExecutionArgs } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { withExtensions } from '../errors.js';

export interface OperationParams {
  readonly query: string;
  readonly operationName?: string | null | undefined;
  readonly variables?: Record<string, unknown> | null | undefined;
}

export type PreparedOperation =
  | {
      readonly ok: true;
      readonly args: ExecutionArgs;
      readonly kind: 'query' | 'mutation' | 'subscription';
      /** Runs the operation through Yoga's envelop (plugins, masking) with the right executor. */
      run(): unknown;
    }
  /** Parse, validation or context (authentication) errors, each carrying extensions.code. */
  | { readonly ok: false; readonly errors: readonly GraphQLError[] };

/**
 * Gives a parse or validation error its code, and drops Yoga's `http` extension: it is meant for
 * HTTP responses and means nothing over a socket.
 */
function withCode(error: GraphQLError, code: string): GraphQLError {
  const { http: _http, ...extensions } = error.extensions;
  return withExtensions(error, { code, ...extensions });
}

/**
 * Builds one operation through `yoga.getEnveloped`, for the transports Yoga does not drive
 * itself (the WebSocket transport), so they get the same context,
 * validation rules and error masking as HTTP. Never throws for bad client input: parse() and
 * validation rules throw, and an uncaught throw would take down every operation of the socket.
 */
export async function prepareOperation(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  yoga: YogaServerInstance<any, any>,
  initialContext: Record<string, unknown>,
  params: OperationParams,
): Promise<PreparedOperation> {
  const enveloped = yoga.getEnveloped({ ...initialContext, params });
  let document;
  try {
    document = enveloped.parse(params.query);
  } catch (error) {
    if (error instanceof GraphQLError) return { ok: false, errors: [withCode(error, 'GRAPHQL_PARSE_FAILED')] };
    throw error;
  }
  let validationErrors: readonly GraphQLError[];
  try {
    validationErrors = enveloped.validate(enveloped.schema, document);
  } catch (error) {
    if (error instanceof GraphQLError) return { ok: false, errors: [withCode(error, 'GRAPHQL_VALIDATION_FAILED')] };
    throw error;
  }
  if (validationErrors.length > 0) {
    return { ok: false, errors: validationErrors.map((error) => withCode(error, 'GRAPHQL_VALIDATION_FAILED')) };
  }
  if (!getOperationAST(document, params.operationName ?? undefined)) {
    const message = params.operationName ? `Unknown operation named "${params.operationName}".` : 'Must provide operation name if query contains multiple operations.';
    return { ok: false, errors: [new GraphQLError(message, { extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } })] };
  }
  let contextValue;
  try {
    contextValue = await enveloped.contextFactory();
  } catch (error) {
    if (error instanceof GraphQLError) return { ok: false, errors: [error] };
    throw error;
  }
  const args: ExecutionArgs = {
    schema: enveloped.schema,
    document,
    contextValue,
    variableValues: params.variables,
    operationName: params.operationName,
  };
  const kind = getOperationAST(document, params.operationName)?.operation ?? 'query';
  // Only the executor is kept: a subscription holds its prepared operation for as long as it is
  // open, and the per-operation parse, validate and context closures are not needed any more.
  const operate = kind === 'subscription' ? enveloped.subscribe : enveloped.execute;
  return { ok: true, args, kind, run: () => operate(args) };
}
