import { NoSchemaIntrospectionCustomRule } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { GatewayMetrics } from '../metrics/metrics.js';

/**
 * Turns introspection off (production default). A validation rule, so it applies to every
 * transport: Yoga's own disable-introspection plugin only covers HTTP.
 */
export function useIntrospectionPolicy(enabled: boolean, metrics: GatewayMetrics): Plugin {
  return {
    onValidate({ addValidationRule }) {
      if (enabled) return;
      addValidationRule(NoSchemaIntrospectionCustomRule);
      return ({ result }) => {
        if (result.some((error) => error.message.startsWith('GraphQL introspection has been disabled'))) metrics.limitTrips.inc({ limit: 'introspection' });
      };
    },
  };
}
