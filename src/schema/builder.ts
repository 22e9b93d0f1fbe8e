import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { hasRole } from '../auth/principal.js';
import { forbidden, unauthenticated } from '../errors.js';
import { idSchema } from '../events/contracts.js';
import type { GraphQLContext } from './context.js';

/** Scopes a field can demand. Parameterised scopes are loaded once per operation and argument. */
export interface AuthScopes {
  /** Any verified token (not anonymous). */
  authenticated: boolean;
  service: boolean;
  admin: boolean;
  /** The viewer is a member of this conversation id. */
  conversationMember: string;
  /** The viewer is the guest or host of this booking id. */
  bookingParty: string;
  /** The viewer owns this chat session id. */
  chatSessionOwner: string;
  /** The viewer is this user id. */
  self: string;
}

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: AuthScopes;
  DefaultFieldNullability: false;
  Scalars: {
    ID: { Input: string; Output: string };
    DateTime: { Input: string; Output: string };
    Date: { Input: string; Output: string };
  };
}>({
  plugins: [ScopeAuthPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    // Without this an unauthorized subscribe still opens the stream and errors on every event.
    authorizeOnSubscribe: true,
    // Pothos' ForbiddenError has no extensions.code; clients get coded errors instead.
    unauthorizedError: (_parent, context, _info, result) =>
      context.principal.kind === 'anonymous'
        ? unauthenticated(`Sign in to do this (${result.message})`)
        : forbidden(result.message),
    authScopes: (context) => {
      const { principal, services } = context;
      // Read only by the scopes that need it, when they are asked: a shared delivery tells
      // per-user rules from role-only ones by whether the user's identity was read at all.
      const userIdOf = () => (principal.kind === 'user' ? principal.userId : undefined);
      // Arguments reach these checks before any resolver validates them: an id that could not
      // exist is refused here, so no lookup (or Redis key) is ever built from it.
      const isId = (value: string) => idSchema.safeParse(value).success;
      return {
        authenticated: principal.kind === 'user',
        service: hasRole(principal, 'service'),
        admin: hasRole(principal, 'admin'),
        conversationMember: (conversationId) => {
          const userId = userIdOf();
          return userId !== undefined && isId(conversationId) && services.directory.conversations.isMember(conversationId, userId);
        },
        bookingParty: async (bookingId) => {
          const userId = userIdOf();
          if (userId === undefined || !isId(bookingId)) return false;
          const parties = await services.directory.bookings.partiesOf(bookingId);
          return parties !== undefined && (parties.guestId === userId || parties.hostId === userId);
        },
        chatSessionOwner: async (sessionId) => {
          const userId = userIdOf();
          if (userId === undefined || !isId(sessionId)) return false;
          const session = await services.directory.chatSessions.get(sessionId);
          return session?.ownerId === userId;
        },
        self: (otherUserId) => {
          const userId = userIdOf();
          return userId !== undefined && userId === otherUserId;
        },
      };
    },
  },
});
