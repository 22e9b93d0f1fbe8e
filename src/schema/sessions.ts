import { badRequest, badUserInput, publishFailed } from '../errors.js';
import type { Role } from '../config/config.js';
import { builder } from './builder.js';
import { RoleEnum, requireId } from './common.js';

const SessionRevocation = builder
  .objectRef<{ readonly userId: string; readonly revokedAt: number; readonly reason?: string | undefined }>('SessionRevocation')
  .implement({
    description: "What revokeSessions did: the user's tokens issued before revokedAt are refused from now on.",
    fields: (t) => ({
      userId: t.exposeID('userId'),
      revokedAt: t.field({ type: 'DateTime', resolve: (revocation) => new Date(revocation.revokedAt).toISOString() }),
      reason: t.string({ nullable: true, resolve: (revocation) => revocation.reason ?? null }),
    }),
  });

builder.mutationField('revokeSessions', (t) =>
  t.field({
    type: SessionRevocation,
    description:
      "Ends every live connection and subscription of a user on every instance (WebSocket close 4403, SSE streams end with UNAUTHENTICATED reason `revoked`) and refuses the user's tokens issued before now. Role `service`.",
    args: {
      userId: t.arg.id({ required: true }),
      reason: t.arg.string({ description: 'Shown to the user in the close reason and logged; at most 200 characters.' }),
    },
    authScopes: { service: true },
    resolve: async (_root, args, context) => {
      const userId = requireId(args.userId, 'userId');
      if (args.reason && args.reason.length > 200) throw badUserInput('reason: at most 200 characters');
      try {
        return await context.services.revocations.revoke(userId, args.reason ?? undefined);
      } catch (error) {
        context.log.warn({ err: error instanceof Error ? error.message : String(error), userId }, 'session revocation failed');
        throw publishFailed('The revocation could not be stored; try again');
      }
    },
  }),
);

const SessionRefresh = builder
  .objectRef<{ readonly userId: string; readonly roles: readonly Role[]; readonly expiresAt: number | undefined }>('SessionRefresh')
  .implement({
    description: "The connection's session after refreshSession: the same user, now on the fresh token.",
    fields: (t) => ({
      userId: t.exposeID('userId'),
      roles: t.field({ type: [RoleEnum], resolve: (session) => [...session.roles] }),
      tokenExpiresAt: t.field({
        type: 'DateTime',
        nullable: true,
        resolve: (session) => (session.expiresAt === undefined ? null : new Date(session.expiresAt).toISOString()),
      }),
    }),
  });

/** Longer than any JWT a sane issuer sends; the verifier refuses what this lets through anyway. */
const MAX_TOKEN_LENGTH = 16 * 1024;

builder.mutationField('refreshSession', (t) =>
  t.field({
    type: SessionRefresh,
    description:
      "WebSocket only: hands this connection a fresh token without reconnecting. The token must verify and name the same user with the same roles; it then replaces the connection's token (its expiry, and the `token_expiring` warning before it, follow the new token) and every open subscription is kept. Refused otherwise, changing nothing: UNAUTHENTICATED (the token does not verify, `extensions.reason` says why), FORBIDDEN with `reason` `other_user` or `roles_changed` (reconnect with the new token instead: every subscription is then authorized anew). Over HTTP and SSE it is BAD_REQUEST: each request carries its own token.",
    args: { token: t.arg.string({ required: true, description: 'The fresh access token (the JWT itself, without "Bearer ").' }) },
    authScopes: { authenticated: true },
    resolve: (_root, args, context) => {
      if (!context.refreshSession) throw badRequest('refreshSession works over WebSocket only: HTTP and SSE requests carry their token in each request');
      if (args.token.length > MAX_TOKEN_LENGTH) throw badUserInput(`token: at most ${MAX_TOKEN_LENGTH} characters`);
      return context.refreshSession(args.token.trim());
    },
  }),
);
