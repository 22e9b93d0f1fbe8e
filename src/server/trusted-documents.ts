import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { hasRole, type Principal } from '../auth/principal.js';
import { trustedDocumentNotFound, trustedDocumentRequired } from '../errors.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { transportOfRequest } from './request-transport.js';

/**
 * Trusted documents (TRUSTED_DOCUMENTS): every caller but the `service` role runs only the
 * documents of the manifests, named by hash in `extensions.persistedQuery.sha256Hash` (the form
 * Yoga, Apollo and urql use), and anything else is refused with a coded error before it is
 * parsed. One rule, two enforcement points: Yoga's persisted-operations plugin for HTTP and SSE
 * (it acts in `onParams`, which only Yoga's HTTP handler runs), and `resolveTrustedDocument` for
 * WebSocket subscribe messages, which our transport builds through `getEnveloped` without
 * `onParams` (the gap other gateways had). Both use the functions below, and
 * test/trusted-documents.test.ts proves each transport.
 *
 * An empty `query` counts as none: graphql-ws requires `query` to be a string, so a client
 * sending only a hash over WebSocket sends `""`.
 */

export type RefusalReason = 'document_text' | 'no_hash' | 'unknown_hash';

const REQUIRED_MESSAGE = 'This gateway runs trusted documents only: send the operation\'s hash in extensions.persistedQuery.sha256Hash instead of its text';

/** Refusals as clients see them. `reason` tells a client whether sending the hash would help. */
export function trustedDocumentRefusal(reason: RefusalReason): GraphQLError {
  return reason === 'unknown_hash'
    ? trustedDocumentNotFound("Unknown trusted document: this hash is not in the gateway's manifest")
    : trustedDocumentRequired(REQUIRED_MESSAGE, reason);
}

/** Services publish with documents of their own (docs/CHANNELS.md), so they are never held to the manifest. */
export function mayRunAnyDocument(principal: Principal): boolean {
  return hasRole(principal, 'service');
}

/**
 * The hash a request names in `extensions.persistedQuery` (`{ version: 1, sha256Hash }`, the
 * plugin's default form), as the manifest keys it: `sha256:<hex>`; a bare hex digest (Apollo's
 * form) is accepted too.
 */
export function trustedDocumentHashOf(params: { readonly extensions?: Record<string, unknown> | null | undefined }): string | undefined {
  const persisted = params.extensions?.['persistedQuery'];
  if (typeof persisted !== 'object' || persisted === null) return undefined;
  const { version, sha256Hash } = persisted as Record<string, unknown>;
  if (version !== 1 || typeof sha256Hash !== 'string' || sha256Hash.length > 71) return undefined;
  return sha256Hash.startsWith('sha256:') ? sha256Hash : `sha256:${sha256Hash}`;
}

interface Params {
  readonly query?: string | null | undefined;
  readonly extensions?: Record<string, unknown> | null | undefined;
}

/** The WebSocket half: the params to run (the manifest's text in `query`), or the refusal. */
export function resolveTrustedDocument<P extends Params>(
  documents: ReadonlyMap<string, string>,
  params: P,
  principal: Principal,
): { ok: true; params: P & { query: string } } | { ok: false; reason: RefusalReason; error: GraphQLError } {
  if (params.query) {
    if (mayRunAnyDocument(principal)) return { ok: true, params: params as P & { query: string } };
    return refused('document_text');
  }
  const hash = trustedDocumentHashOf(params);
  if (hash === undefined) return refused('no_hash');
  const query = documents.get(hash);
  if (query === undefined) return refused('unknown_hash');
  return { ok: true, params: { ...params, query } };
}

const refused = (reason: RefusalReason) => ({ ok: false as const, reason, error: trustedDocumentRefusal(reason) });

/**
 * The HTTP and SSE half: Yoga's persisted-operations plugin with the same rule. `principalOf`
 * authenticates the request once (the context reuses it); a caller whose token does not verify
 * is no service, and is refused here before authentication would refuse it.
 */
export function useTrustedDocuments(deps: {
  documents: ReadonlyMap<string, string>;
  principalOf: (request: Request) => Promise<Principal>;
  metrics: GatewayMetrics;
}): Plugin {
  const refuse = (reason: RefusalReason, request: Request) => {
    deps.metrics.trustedDocumentRefusals.inc({ reason, transport: transportOfRequest(request) });
    return trustedDocumentRefusal(reason);
  };
  return usePersistedOperations({
    extractPersistedOperationId: (params) => trustedDocumentHashOf(params) ?? null,
    getPersistedOperation: (hash) => deps.documents.get(hash) ?? null,
    allowArbitraryOperations: (request) =>
      deps.principalOf(request).then(
        (principal) => mayRunAnyDocument(principal),
        () => false,
      ),
    customErrors: {
      persistedQueryOnly: ({ request }) => refuse('document_text', request),
      keyNotFound: ({ request }) => refuse('no_hash', request),
      notFound: ({ request }) => refuse('unknown_hash', request),
    },
  });
}
