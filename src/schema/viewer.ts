import { builder } from './builder.js';
import { RoleEnum } from './common.js';
import type { Principal } from '../auth/principal.js';

const Viewer = builder.objectRef<Principal>('Viewer').implement({
  description: 'Who the gateway thinks you are, from your token.',
  fields: (t) => ({
    anonymous: t.boolean({ resolve: (principal) => principal.kind === 'anonymous' }),
    id: t.id({ nullable: true, description: "The token's sub; null when anonymous.", resolve: (principal) => (principal.kind === 'user' ? principal.userId : null) }),
    roles: t.field({
      type: [RoleEnum],
      resolve: (principal) => (principal.kind === 'user' ? [...principal.roles] : []),
    }),
    tokenExpiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      resolve: (principal) =>
        principal.kind === 'user' && principal.expiresAt !== undefined ? new Date(principal.expiresAt).toISOString() : null,
    }),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({ type: Viewer, description: 'The caller, as authenticated.', resolve: (_root, _args, { principal }) => principal }),
);
