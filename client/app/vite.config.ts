import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import react from '@vitejs/plugin-react';
import { defaultClientConditions, defineConfig, type Plugin } from 'vite';

/** The gateway `npm run app:dev` proxies to; `npm start` listens on 4000 by default. */
const gateway = process.env['TIDINGS_GATEWAY_URL'] ?? 'http://localhost:4000';

/**
 * The demo web app. `npm run app:build` writes client/app/dist, which the gateway serves at /app/;
 * `npm run app:dev` serves it with hot reload and proxies the gateway's endpoints.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/app/',
  plugins: [react(), precompress()],
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

/**
 * Writes `<file>.br` and `<file>.gz` beside each text file of the build, where smaller: the
 * gateway's sirv sends them to clients that accept them (src/web-app/web-app.ts). Compressed
 * once here, at the highest levels, instead of on every request.
 */
function precompress(): Plugin {
  const brotli = promisify(brotliCompress);
  const gzipped = promisify(gzip);
  return {
    name: 'tidings:precompress',
    apply: 'build',
    async writeBundle(options, bundle) {
      const directory = options.dir;
      if (!directory) return;
      const files = Object.keys(bundle).filter((file) => /\.(html|js|css|json|svg|txt)$/.test(file));
      await Promise.all(
        files.map(async (file) => {
          const path = join(directory, file);
          const original = await readFile(path);
          const variants: Array<[string, Buffer]> = [
            ['.br', await brotli(original, { params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY } })],
            ['.gz', await gzipped(original, { level: constants.Z_BEST_COMPRESSION })],
          ];
          for (const [extension, compressed] of variants) {
            if (compressed.byteLength < original.byteLength) await writeFile(path + extension, compressed);
          }
        }),
      );
    },
  };
}
