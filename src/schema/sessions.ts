import { badUserInput, publishFailed } from '../errors.js';
import { builder } from './builder.js';
import { requireId } from './common.js';

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
