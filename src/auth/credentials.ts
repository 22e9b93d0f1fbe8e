/**
 * Pulls a bearer token out of an `Authorization` header value (HTTP, SSE) or a graphql-ws
 * `connection_init` payload. Returns undefined when no credentials were offered and a
 * string "" when something was offered but it is not a bearer token (callers refuse that).
 */
export function bearerFromHeader(header: string | null | undefined): string | undefined {
  if (header === null || header === undefined || header.trim() === '') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? '';
}

/** graphql-ws clients send `{ authorization: "Bearer <jwt>" }`; the header-style key is accepted too. */
export function bearerFromConnectionParams(params: unknown): string | undefined {
  if (params === undefined || params === null) return undefined;
  if (typeof params !== 'object' || Array.isArray(params)) return '';
  const record = params as Record<string, unknown>;
  const value = record['authorization'] ?? record['Authorization'];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? bearerFromHeader(value) : '';
}
