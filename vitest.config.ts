import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS and ESM entry points; without this alias vitest can load both and
    // graphql-js then refuses "GraphQLObjectType from another module or realm".
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  // The tests run as SSR modules: @tidings/client from its TypeScript source (its
  // "tidings-source" export condition), not a build.
  ssr: { resolve: { conditions: ['tidings-source', ...defaultServerConditions] } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Integration tests start real servers; two workers match the machine's two cores.
    pool: 'forks',
    maxWorkers: 2,
  },
});
