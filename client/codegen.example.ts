/**
 * graphql-codegen for your own operations against the Tidings schema that ships in this package.
 * Copy this file to your project as `codegen.ts`, then:
 *
 *   npm install -D @graphql-codegen/cli @graphql-codegen/client-preset
 *   npx graphql-codegen
 *
 * and write operations with the generated `graphql()`:
 *
 *   import { graphql } from './gql';
 *   export const MyPrices = graphql(`subscription MyPrices($hotelId: ID!) { priceUpdated(hotelId: $hotelId) { id price { amount } } }`);
 *
 * The typed documents work with `useEventStream` and the urql client like the package's own.
 */
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'node_modules/@tidings/client/schema.graphql',
  documents: ['src/**/*.{ts,tsx}', '!src/gql/**'],
  generates: {
    'src/gql/': {
      preset: 'client',
      // src/gql/persisted-documents.json: give it to the gateway (TRUSTED_DOCUMENTS) and the
      // client sends these operations by hash when the gateway runs trusted documents only.
      presetConfig: { persistedDocuments: { mode: 'embedHashInDocument', hashAlgorithm: 'sha256' } },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        // How the gateway serializes its scalars (docs/SCHEMA.md): ISO 8601 strings, string ids.
        scalars: { DateTime: 'string', Date: 'string', ID: 'string' },
      },
    },
  },
};

export default config;
