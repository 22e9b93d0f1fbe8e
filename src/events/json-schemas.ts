import { z } from 'zod';
import { EVENT_TYPES, membershipChangeSchema, sessionRevocationSchema, wireSchemaOf, type EventType } from './contracts.js';

/**
 * The machine-readable contract of each event, as JSON Schema (draft 2020-12), generated from the
 * same zod definitions the gateway validates with. Written to docs/channels/ by
 * `npm run contracts:print`; a test fails when the files drift from the code.
 *
 * Cross-field rules (checkOut after checkIn, a CHUNK carries text) cannot be expressed in the
 * generated schema and are described in docs/CHANNELS.md; the gateway enforces them.
 */
export function eventJsonSchema(type: EventType): Record<string, unknown> {
  return {
    ...z.toJSONSchema(wireSchemaOf(type), { io: 'input', unrepresentable: 'any' }),
    $id: `https://tidings.dev/schemas/events/${type}.v1.json`,
    title: `${type} event, version 1`,
  };
}

export function membershipChangeJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(membershipChangeSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://tidings.dev/schemas/membership-change.v1.json',
    title: 'conversation membership change, version 1',
  };
}

export function sessionRevocationJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(sessionRevocationSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://tidings.dev/schemas/session-revocation.v1.json',
    title: "revocation of a user's sessions, version 1",
  };
}

export function allEventJsonSchemas(): Array<{ file: string; content: string }> {
  const render = (schema: Record<string, unknown>) => `${JSON.stringify(schema, null, 2)}\n`;
  return [
    ...EVENT_TYPES.map((type) => ({ file: `docs/channels/${type}.v1.schema.json`, content: render(eventJsonSchema(type)) })),
    { file: 'docs/channels/membershipChange.v1.schema.json', content: render(membershipChangeJsonSchema()) },
    { file: 'docs/channels/sessionRevocation.v1.schema.json', content: render(sessionRevocationJsonSchema()) },
  ];
}
