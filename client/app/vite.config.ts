import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defaultClientConditions, defineConfig } from 'vite';

/** The gateway `npm run app:dev` proxies to; `npm start` listens on 4000 by default. */
const gateway = process.env['TIDINGS_GATEWAY_URL'] ?? 'http://localhost:4000';

/**
 * The demo web app. `npm run app:build` writes client/app/dist, which the gateway serves at /app/;
 * `npm run app:dev` serves it with hot reload and proxies the gateway's endpoints.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/app/',
  plugins: [react()],
  // @tidings/client from its TypeScript source (its "tidings-source" export condition), not a build.
  resolve: { conditions: ['tidings-source', ...defaultClientConditions] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
  server: {
    port: 5173,
    proxy: {
      '/graphql': { target: gateway, ws: true },
      '/dev': gateway,
      // The client checks /health before falling back to SSE.
      '/health': gateway,
    },
  },
});
