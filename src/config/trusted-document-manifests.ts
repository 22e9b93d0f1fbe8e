import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parse, GraphQLError } from 'graphql';

/** `sha256:` and the SHA-256 of the document's text in lowercase hex: graphql-codegen's client preset with `hashAlgorithm: 'sha256'`. */
export const TRUSTED_DOCUMENT_HASH = /^sha256:[0-9a-f]{64}$/;

/** A manifest larger than this is refused: the gateway holds every document in memory. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/**
 * Reads the manifests TRUSTED_DOCUMENTS names (graphql-codegen's `persisted-documents.json`: an
 * object of hash → document text) into one map, or says every problem with them: a file that
 * cannot be read, is not such an object or is empty, and each entry whose hash is not the
 * SHA-256 of its text (a hand-edited or truncated manifest would otherwise trust a document
 * nobody reviewed under another's name) or whose text is not one GraphQL operation.
 */
export function readTrustedDocumentManifests(paths: readonly string[]): { documents: ReadonlyMap<string, string>; problems: string[] } {
  const documents = new Map<string, string>();
  const problems: string[] = [];
  for (const path of paths) {
    const problem = (text: string) => problems.push(`TRUSTED_DOCUMENTS: ${path}: ${text}`);
    let content: unknown;
    try {
      const size = statSync(path).size;
      if (size > MAX_MANIFEST_BYTES) {
        problem(`${size} bytes, more than the ${MAX_MANIFEST_BYTES} a manifest may have`);
        continue;
      }
      content = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      problem(error instanceof SyntaxError ? `not JSON (${error.message})` : `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
      continue;
    }
    if (typeof content !== 'object' || content === null || Array.isArray(content)) {
      problem('must be an object of "sha256:<hex>": "<document>" (graphql-codegen persisted-documents.json)');
      continue;
    }
    const entries = Object.entries(content as Record<string, unknown>);
    if (entries.length === 0) problem('holds no documents (every client but services would be refused)');
    for (const [hash, text] of entries) {
      const shown = hash.length > 80 ? `${hash.slice(0, 80)}…` : hash;
      if (typeof text !== 'string') {
        problem(`${shown}: the document must be a string`);
      } else if (!TRUSTED_DOCUMENT_HASH.test(hash)) {
        problem(`${shown}: a key must be "sha256:" and 64 lowercase hex digits`);
      } else if (hash !== `sha256:${createHash('sha256').update(text).digest('hex')}`) {
        problem(`${shown}: is not the SHA-256 of its document (regenerate the manifest with npm run codegen)`);
      } else {
        const invalid = operationProblem(text);
        if (invalid) problem(`${shown}: ${invalid}`);
        else documents.set(hash, text);
      }
    }
  }
  return { documents, problems };
}

function operationProblem(text: string): string | undefined {
  try {
    const operations = parse(text).definitions.filter((definition) => definition.kind === 'OperationDefinition');
    return operations.length === 1 ? undefined : `holds ${operations.length} operations, not one`;
  } catch (error) {
    if (error instanceof GraphQLError) return `does not parse (${error.message})`;
    throw error;
  }
}
