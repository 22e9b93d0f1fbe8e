import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * Generates TypeScript types for the client's operations from schema.graphql:
 * `npm run codegen`. The output in client/src/generated/ is committed; a test fails when it is stale.
 */
const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: ['client/src/**/*.ts', '!client/src/generated/**'],
  ignoreNoDocuments: false,
  generates: {
    'client/src/generated/': {
      preset: 'client',
      presetConfig: {
        fragmentMasking: false,
        // persisted-documents.json (hash → document) for TRUSTED_DOCUMENTS, and each document
        // carries its hash (`__meta__.hash`) so @tidings/client can send it instead of the text.
        persistedDocuments: { mode: 'embedHashInDocument', hashAlgorithm: 'sha256' },
      },
      config: {
        useTypeImports: true,
        // NodeNext + verbatimModuleSyntax: import paths with .js, no CommonJS-style imports.
        emitLegacyCommonJSImports: false,
        enumsAsTypes: true,
        scalars: { DateTime: 'string', Date: 'string', ID: 'string' },
      },
    },
  },
};

export default config;
