import { GraphQLError } from 'graphql';
import type { Response as SseResponse } from 'graphql-sse';
import { createHandler } from 'graphql-sse/lib/use/fetch';
import type { Plugin, YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import { prepareOperation } from '../server/prepare-operation.js';

function errorResponse(error: GraphQLError): SseResponse {
  const http = error.extensions['http'] as { status?: number } | undefined;
  const { http: _omitted, ...extensions } = error.extensions;
  return [
    JSON.stringify({ errors: [{ message: error.message, extensions }] }),
    { status: http?.status ?? 400, statusText: 'Error', headers: { 'content-type': 'application/json; charset=utf-8' } },
  ];
}

/**
 * The graphql-sse protocol's "single connection" mode at `${graphqlEndpoint}/stream`
 * (reserve a stream with PUT, then POST operations with its token). Yoga itself already
 * serves the "distinct connections" mode on the GraphQL endpoint.
 *
 * Unlike @graphql-yoga/plugin-graphql-sse, parse and authentication errors become proper
 * responses here instead of rejected promises.
 */
export function useGraphQLSSEProtocol(options: { endpoint: string; logger: Logger }): Plugin {
  let handler: ((request: Request) => Promise<Response>) | undefined;
  const serverContextOf = new WeakMap<Request, object>();

  return {
    onYogaInit({ yoga }) {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const instance = yoga as YogaServerInstance<any, any>;
      handler = createHandler(
        {
          onSubscribe: async (request, params) => {
            const raw = request.raw as Request;
            try {
              const prepared = await prepareOperation(instance, { ...serverContextOf.get(raw), request: raw }, params);
              if (prepared.ok) return prepared.run() as never;
              // Authentication failures answer with their HTTP status; syntax errors go into the stream.
              const [first] = prepared.errors;
              return first?.extensions['http'] ? errorResponse(first) : { errors: [...prepared.errors] };
            } catch (error) {
              options.logger.error({ err: error }, 'graphql-sse subscribe failed');
              return errorResponse(new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL_SERVER_ERROR', http: { status: 500 } } }));
            }
          },
        },
        instance.fetchAPI,
      );
    },
    onRequest({ request, url, endResponse, serverContext }) {
      if (url.pathname !== options.endpoint || !handler) return;
      serverContextOf.set(request, serverContext);
      return handler(request).then(endResponse);
    },
  };
}
