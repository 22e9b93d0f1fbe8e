import { GraphQLError } from 'graphql';
import { createGraphQLError, isAsyncIterable, type Plugin } from 'graphql-yoga';
import { ErrorCode, withExtensions } from '../errors.js';

type HttpExtension = { status?: number; spec?: boolean; headers?: Record<string, string> };

/** A variable-coercion error from execute(): GraphQL's own, with only Yoga's http status 400. */
export function withInputCode(error: GraphQLError): GraphQLError {
  if (error.extensions['code'] !== undefined) return error;
  if ((error.extensions['http'] as HttpExtension | undefined)?.status !== 400) return error;
  return withExtensions(error, { ...error.extensions, code: ErrorCode.BadUserInput });
}

export function useInputErrors(): Plugin {
  return {
    // GET ?variables= / ?extensions= with malformed JSON: Yoga's parser throws a bare SyntaxError (500).
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          if (error instanceof SyntaxError) {
            throw createGraphQLError('The variables or extensions parameter is not valid JSON.', {
              extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
            });
          }
          throw error;
        }
      });
    },
    // graphql-sse distinct connections: errors found before execution are next events on an accepted stream.
    onResultProcess({ request, result, setResult }) {
      if (!request.headers.get('accept')?.includes('text/event-stream')) return;
      if (isAsyncIterable(result) || Array.isArray(result) || !result.errors) return;
      setResult({
        ...result,
        errors: result.errors.map((error) => {
          const http = (error as GraphQLError).extensions?.['http'] as HttpExtension | undefined;
          if (http?.status !== 400 || !(error instanceof GraphQLError)) return error;
          return new GraphQLError(error.message, { ...error, extensions: { ...error.extensions, http: { ...http, spec: true } } });
        }),
      });
    },
  };
}
