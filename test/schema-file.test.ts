import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { printSchemaSDL } from '../src/schema/index.js';

describe('schema.graphql', () => {
  it('matches the schema the code builds (run `npm run schema:print` after changing src/schema)', () => {
    const committed = readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8');
    expect(committed).toBe(printSchemaSDL());
  });

  it('has the six subscriptions of the product brief', () => {
    const sdl = printSchemaSDL();
    for (const field of [
      'priceUpdated(hotelId: ID!): PriceUpdate!',
      'newMessage(conversationId: ID!): Message!',
      'bookingUpdated(bookingId: ID): BookingUpdate!',
      'notificationCreated(',
      'userTyping(conversationId: ID!): TypingEvent!',
      'chatResponse(sessionId: ID!): ChatResponse!',
    ]) {
      expect(sdl).toContain(field);
    }
  });
});
