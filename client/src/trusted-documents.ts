import { makeOperation, type Exchange, type Operation } from '@urql/core';
import { filter, map, pipe } from 'wonka';

/**
 * Whether operations go to the gateway by hash (its trusted documents, TRUSTED_DOCUMENTS) or as
 * text. `auto` sends text until the gateway asks for hashes (its connection_ack says
 * `trustedDocuments: true`, or it refuses a text with TRUSTED_DOCUMENT_REQUIRED, after which that
 * operation is sent again by hash, once); `always` sends hashes from the start; `never` sends text.
 * Documents without a hash (written by hand, not generated with `persistedDocuments`) always go
 * as text.
 */
export type TrustedDocumentsMode = 'auto' | 'always' | 'never';

/** The code a gateway refuses a document's text with when it runs trusted documents only. */
export const TRUSTED_DOCUMENT_REQUIRED = 'TRUSTED_DOCUMENT_REQUIRED';

const HASH = /^sha256:[0-9a-f]{64}$/;

interface CodedError {
  readonly extensions?: Readonly<Record<string, unknown>> | undefined;
}

/** The extensions naming a document by hash, the form the gateway (and Yoga, Apollo, urql) reads. */
export const persistedQueryExtension = (hash: string) => ({ persistedQuery: { version: 1 as const, sha256Hash: hash } });

/** What the client knows of the gateway's trusted documents: one per client, shared by every transport. */
export class TrustedDocumentsPolicy {
  private asked = false;

  constructor(readonly mode: TrustedDocumentsMode = 'auto') {}

  /** Send hashes rather than text (for documents that have one). */
  get sendsHashes(): boolean {
    return this.mode === 'always' || (this.mode === 'auto' && this.asked);
  }

  /** The gateway asked for hashes. */
  gatewayAsks(): void {
    this.asked = true;
  }

  /** The hash graphql-codegen embedded in a generated document (`persistedDocuments`: `__meta__.hash`). */
  hashOf(document: unknown): string | undefined {
    const hash = (document as { __meta__?: { hash?: unknown } } | null | undefined)?.__meta__?.hash;
    return typeof hash === 'string' && HASH.test(hash) ? hash : undefined;
  }

  /**
   * A refusal of a text that a hash would avoid: the policy learns it, and the caller sends the
   * operation again by hash. False in `never` mode, for documents without a hash, and once the
   * hash was sent already (never a loop).
   */
  retriesWithHash(errors: readonly CodedError[] | undefined, document: unknown, sentHash: boolean): boolean {
    if (sentHash || this.mode === 'never' || this.hashOf(document) === undefined) return false;
    if (!errors?.some((error) => error.extensions?.['code'] === TRUSTED_DOCUMENT_REQUIRED)) return false;
    this.gatewayAsks();
    return true;
  }
}

const sentByHash = (operation: Operation) => Boolean((operation.extensions as Record<string, unknown> | undefined)?.['persistedQuery']);

/**
 * Queries and mutations over HTTP: named by hash when the policy says so (urql then leaves the
 * text out of the request body), and sent again by hash when the gateway refused the text.
 * Subscriptions are the subscription transport's (createTidingsClient).
 */
export function trustedDocumentsExchange(policy: TrustedDocumentsPolicy): Exchange {
  return ({ forward, client }) =>
    (operations$) =>
      pipe(
        operations$,
        map((operation) => {
          if (operation.kind !== 'query' && operation.kind !== 'mutation') return operation;
          const hash = policy.sendsHashes ? policy.hashOf(operation.query) : undefined;
          if (hash === undefined || sentByHash(operation)) return operation;
          return makeOperation(operation.kind, { ...operation, extensions: { ...operation.extensions, ...persistedQueryExtension(hash) } }, operation.context);
        }),
        forward,
        filter((result) => {
          const operation = result.operation;
          if (operation.kind !== 'query' && operation.kind !== 'mutation') return true;
          if (!policy.retriesWithHash(result.error?.graphQLErrors, operation.query, sentByHash(operation))) return true;
          // Refused before it ran (the gateway parses nothing it does not trust): safe to send again, mutations too.
          client.reexecuteOperation(operation);
          return false;
        }),
      );
}
