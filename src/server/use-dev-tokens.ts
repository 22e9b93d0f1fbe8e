import type { Plugin } from 'graphql-yoga';
import { z } from 'zod';
import { mintToken } from '../auth/dev-tokens.js';
import { ROLES } from '../config/config.js';
import { idSchema } from '../events/contracts.js';

export const DEV_TOKEN_PATH = '/dev/token';

const querySchema = z.object({
  sub: idSchema,
  roles: z
    .string()
    .default('user')
    .transform((value) => value.split(',').map((role) => role.trim()).filter(Boolean))
    .pipe(z.array(z.enum(ROLES as unknown as [string, ...string[]])).max(4)),
  expires: z.coerce.number().int().min(10).max(86_400).default(3_600),
});

/**
 * GET /dev/token?sub=alice&roles=user,host[&expires=3600] → { token, expiresAt }.
 * For the demo web app and local development only: enabled by config (DEV_TOKENS), which refuses
 * to turn it on in production.
 */
export function useDevTokens(secret: Uint8Array): Plugin {
  return {
    async onRequest({ url, request, endResponse, fetchAPI }) {
      if (url.pathname !== DEV_TOKEN_PATH) return;
      const json = (body: unknown, status = 200) =>
        new fetchAPI.Response(JSON.stringify(body), {
          status,
          headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
        });
      if (request.method !== 'GET') {
        endResponse(new fetchAPI.Response(null, { status: 405, headers: { allow: 'GET' } }));
        return;
      }
      const query = querySchema.safeParse(Object.fromEntries(url.searchParams));
      if (!query.success) {
        const problems = query.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
        endResponse(json({ errors: problems }, 400));
        return;
      }
      const { sub, roles, expires } = query.data;
      const token = await mintToken({ secret, sub, roles: roles as never, expiresInSeconds: expires });
      endResponse(json({ token, sub, roles, expiresAt: new Date(Date.now() + expires * 1000).toISOString() }));
    },
  };
}
