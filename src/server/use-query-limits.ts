import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import type { Plugin } from 'graphql-yoga';
import type { Config } from '../config/config.js';
import type { GatewayMetrics } from '../metrics/metrics.js';

/**
 * Shape limits on every operation (depth, aliases, directives, tokens, cost) by graphql-armor.
 * Its rules run in parse and validate, which every transport goes through (WebSocket via
 * prepareOperation), so a crafted subscription is refused like a crafted query.
 */
export function useQueryLimits(limits: Config['limits'], metrics: GatewayMetrics): Plugin {
  const countTrip = (limit: string) => [() => metrics.limitTrips.inc({ limit })];
  const { query } = limits;
  return EnvelopArmorPlugin({
    maxDepth: { n: query.maxDepth, ignoreIntrospection: true, onReject: countTrip('query_depth') },
    maxAliases: { n: query.maxAliases, onReject: countTrip('query_aliases') },
    maxDirectives: { n: query.maxDirectives, onReject: countTrip('query_directives') },
    maxTokens: { n: query.maxTokens, onReject: countTrip('query_tokens') },
    costLimit: { maxCost: query.maxCost, ignoreIntrospection: true, onReject: countTrip('query_cost') },
    // Suggestions ("did you mean …") reveal the schema when introspection is off.
    blockFieldSuggestion: { enabled: !limits.introspection },
  }) as Plugin;
}
