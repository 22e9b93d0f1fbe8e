import { NoSchemaIntrospectionCustomRule } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * Turns introspection off (production default). A validation rule, so it applies to every
 * transport: Yoga's own disable-introspection plugin only covers HTTP.
 */
export function useIntrospectionPolicy(enabled: boolean): Plugin {
  return {
    onValidate({ addValidationRule }) {
      if (!enabled) addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}
