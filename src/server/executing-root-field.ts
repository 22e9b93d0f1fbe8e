import {
  getDirectiveValues,
  getOperationAST,
  getVariableValues,
  GraphQLIncludeDirective,
  GraphQLSkipDirective,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type FragmentSpreadNode,
  type FieldNode,
  type GraphQLSchema,
  type InlineFragmentNode,
  type SelectionSetNode,
} from 'graphql';

/**
 * The name of the root field a subscription will execute: the first one graphql's own field
 * collection keeps (executing a subscription takes the first collected field), with `@skip` and
 * `@include` applied to the coerced variables and fragments followed. Undefined when it cannot
 * be told (variables that do not coerce, no such operation): the ordinary pipeline then answers
 * with its own errors. Reading `selections[0]` instead would let
 * `priceUpdated(…) @skip(if: true) notificationCreated` pass for a `priceUpdated`.
 */
export function executingRootField(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Readonly<Record<string, unknown>> | null | undefined,
): string | undefined {
  const operation = getOperationAST(document, operationName);
  if (!operation) return undefined;
  // The common case, without coercing anything: a first field with no directives is collected first.
  const written = operation.selectionSet.selections[0];
  if (written?.kind === Kind.FIELD && !written.directives?.length) return written.name.value;
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {});
  if (coerced.errors) return undefined;
  const values = coerced.coerced;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const visited = new Set<string>();

  const included = (node: FieldNode | FragmentSpreadNode | InlineFragmentNode): boolean => {
    if (!node.directives?.length) return true;
    if (getDirectiveValues(GraphQLSkipDirective, node, values)?.['if'] === true) return false;
    return getDirectiveValues(GraphQLIncludeDirective, node, values)?.['if'] !== false;
  };
  const first = (selectionSet: SelectionSetNode): string | undefined => {
    for (const selection of selectionSet.selections) {
      if (!included(selection)) continue;
      if (selection.kind === Kind.FIELD) return selection.name.value;
      // Fragments on a root type only ever name that type (validation checks the condition).
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const found = first(selection.selectionSet);
        if (found !== undefined) return found;
        continue;
      }
      const name = selection.name.value;
      if (visited.has(name)) continue;
      visited.add(name);
      const fragment = fragments.get(name);
      const found = fragment ? first(fragment.selectionSet) : undefined;
      if (found !== undefined) return found;
    }
    return undefined;
  };
  try {
    return first(operation.selectionSet);
  } catch {
    // A directive argument that does not coerce: not ours to answer.
    return undefined;
  }
}
