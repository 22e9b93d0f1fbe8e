/**
 * Which transport an HTTP request to /graphql is: `sse` when the client asks for an event stream
 * first (graphql-sse and EventSource send `Accept: text/event-stream`), else `http`. urql and
 * other fetch clients list text/event-stream among several types they accept for a query, and
 * are answered with JSON: they are `http`.
 */
export function transportOfRequest(request: Request): 'http' | 'sse' {
  const first = request.headers.get('accept')?.split(',')[0]?.split(';')[0]?.trim().toLowerCase();
  return first === 'text/event-stream' ? 'sse' : 'http';
}
