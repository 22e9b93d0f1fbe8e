import { graphql } from './generated/index.js';

/**
 * Every operation a frontend needs, typed by `npm run codegen` from schema.graphql.
 * Each subscription selects all the fields a viewer may see; admin-only fields live in their own
 * documents so ordinary users never receive FORBIDDEN errors for fields they cannot have.
 */

export const ViewerQuery = graphql(`
  query Viewer {
    viewer { id anonymous roles tokenExpiresAt }
  }
`);

export const PriceUpdatedSubscription = graphql(`
  subscription PriceUpdated($hotelId: ID!) {
    priceUpdated(hotelId: $hotelId) {
      id occurredAt hotelId roomType
      price { amountMinor amount currency }
      previousPrice { amountMinor amount currency }
    }
  }
`);

export const PriceUpdatedWithCostSubscription = graphql(`
  subscription PriceUpdatedWithCost($hotelId: ID!) {
    priceUpdated(hotelId: $hotelId) {
      id occurredAt hotelId roomType
      price { amountMinor amount currency }
      previousPrice { amountMinor amount currency }
      supplierCost { amountMinor amount currency }
      margin { amountMinor amount currency }
    }
  }
`);

export const NewMessageSubscription = graphql(`
  subscription NewMessage($conversationId: ID!) {
    newMessage(conversationId: $conversationId) { id occurredAt messageId conversationId senderId text }
  }
`);

export const UserTypingSubscription = graphql(`
  subscription UserTyping($conversationId: ID!) {
    userTyping(conversationId: $conversationId) { id occurredAt conversationId userId state }
  }
`);

export const BookingUpdatedSubscription = graphql(`
  subscription BookingUpdated($bookingId: ID) {
    bookingUpdated(bookingId: $bookingId) {
      id occurredAt bookingId hotelId guestId hostId status previousStatus checkIn checkOut
      totalPrice { amountMinor amount currency }
    }
  }
`);

export const NotificationCreatedSubscription = graphql(`
  subscription NotificationCreated($userId: ID) {
    notificationCreated(userId: $userId) { id occurredAt notificationId userId kind title body link }
  }
`);

export const ChatResponseSubscription = graphql(`
  subscription ChatResponse($sessionId: ID!) {
    chatResponse(sessionId: $sessionId) { id occurredAt sessionId replyId sequence status text }
  }
`);

/**
 * Who of a conversation's members is present: first a SNAPSHOT (`present`, the viewer among
 * them), then CHANGES (`changes`: JOINED / LEFT, coalesced). Holding it counts the viewer as
 * present. `usePresence` in `@tidings/client/react` keeps the set for you.
 */
export const ConversationPresenceSubscription = graphql(`
  subscription ConversationPresence($conversationId: ID!) {
    presence(conversationId: $conversationId) {
      conversationId kind present at
      changes { userId change at }
    }
  }
`);

/**
 * Whether these users are online anywhere: first each one's state, then a change whenever one
 * comes online or goes offline. Name the conversationId or bookingId the viewer shares with them.
 */
export const UserPresenceSubscription = graphql(`
  subscription UserPresence($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {
    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }
  }
`);

/**
 * The same, once: whether these users are online now. (Its operation is `UserPresenceNow`, so its
 * generated types are `UserPresenceNowQuery` / `UserPresenceNowQueryVariables`: operation names
 * must be unique, and the subscription has `UserPresence`.)
 */
export const UserPresenceQuery = graphql(`
  query UserPresenceNow($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {
    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }
  }
`);

export const SetTypingMutation = graphql(`
  mutation SetTyping($conversationId: ID!, $state: TypingState!) {
    setTyping(conversationId: $conversationId, state: $state)
  }
`);

export const StartChatSessionMutation = graphql(`
  mutation StartChatSession {
    startChatSession { id createdAt }
  }
`);

export const SendChatMessageMutation = graphql(`
  mutation SendChatMessage($sessionId: ID!, $text: String!) {
    sendChatMessage(sessionId: $sessionId, text: $text) { sessionId messageId }
  }
`);

/** Hands the WebSocket connection a fresh token in place (the client does this before expiry). */
export const RefreshSessionMutation = graphql(`
  mutation RefreshSession($token: String!) {
    refreshSession(token: $token) { userId roles tokenExpiresAt }
  }
`);
