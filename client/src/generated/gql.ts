/* eslint-disable */
import * as types from './graphql.js';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  query Viewer {\n    viewer { id anonymous roles tokenExpiresAt }\n  }\n": typeof types.ViewerDocument,
    "\n  subscription PriceUpdated($hotelId: ID!) {\n    priceUpdated(hotelId: $hotelId) {\n      id occurredAt hotelId roomType\n      price { amountMinor amount currency }\n      previousPrice { amountMinor amount currency }\n    }\n  }\n": typeof types.PriceUpdatedDocument,
    "\n  subscription PriceUpdatedWithCost($hotelId: ID!) {\n    priceUpdated(hotelId: $hotelId) {\n      id occurredAt hotelId roomType\n      price { amountMinor amount currency }\n      previousPrice { amountMinor amount currency }\n      supplierCost { amountMinor amount currency }\n      margin { amountMinor amount currency }\n    }\n  }\n": typeof types.PriceUpdatedWithCostDocument,
    "\n  subscription NewMessage($conversationId: ID!) {\n    newMessage(conversationId: $conversationId) { id occurredAt messageId conversationId senderId text }\n  }\n": typeof types.NewMessageDocument,
    "\n  subscription UserTyping($conversationId: ID!) {\n    userTyping(conversationId: $conversationId) { id occurredAt conversationId userId state }\n  }\n": typeof types.UserTypingDocument,
    "\n  subscription BookingUpdated($bookingId: ID) {\n    bookingUpdated(bookingId: $bookingId) {\n      id occurredAt bookingId hotelId guestId hostId status previousStatus checkIn checkOut\n      totalPrice { amountMinor amount currency }\n    }\n  }\n": typeof types.BookingUpdatedDocument,
    "\n  subscription NotificationCreated($userId: ID) {\n    notificationCreated(userId: $userId) { id occurredAt notificationId userId kind title body link }\n  }\n": typeof types.NotificationCreatedDocument,
    "\n  subscription ChatResponse($sessionId: ID!) {\n    chatResponse(sessionId: $sessionId) { id occurredAt sessionId replyId sequence status text }\n  }\n": typeof types.ChatResponseDocument,
    "\n  subscription ConversationPresence($conversationId: ID!) {\n    presence(conversationId: $conversationId) {\n      conversationId kind present at\n      changes { userId change at }\n    }\n  }\n": typeof types.ConversationPresenceDocument,
    "\n  subscription UserPresence($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {\n    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }\n  }\n": typeof types.UserPresenceDocument,
    "\n  query UserPresenceNow($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {\n    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }\n  }\n": typeof types.UserPresenceNowDocument,
    "\n  mutation SetTyping($conversationId: ID!, $state: TypingState!) {\n    setTyping(conversationId: $conversationId, state: $state)\n  }\n": typeof types.SetTypingDocument,
    "\n  mutation StartChatSession {\n    startChatSession { id createdAt }\n  }\n": typeof types.StartChatSessionDocument,
    "\n  mutation SendChatMessage($sessionId: ID!, $text: String!) {\n    sendChatMessage(sessionId: $sessionId, text: $text) { sessionId messageId }\n  }\n": typeof types.SendChatMessageDocument,
    "\n  mutation RefreshSession($token: String!) {\n    refreshSession(token: $token) { userId roles tokenExpiresAt }\n  }\n": typeof types.RefreshSessionDocument,
};
const documents: Documents = {
    "\n  query Viewer {\n    viewer { id anonymous roles tokenExpiresAt }\n  }\n": types.ViewerDocument,
    "\n  subscription PriceUpdated($hotelId: ID!) {\n    priceUpdated(hotelId: $hotelId) {\n      id occurredAt hotelId roomType\n      price { amountMinor amount currency }\n      previousPrice { amountMinor amount currency }\n    }\n  }\n": types.PriceUpdatedDocument,
    "\n  subscription PriceUpdatedWithCost($hotelId: ID!) {\n    priceUpdated(hotelId: $hotelId) {\n      id occurredAt hotelId roomType\n      price { amountMinor amount currency }\n      previousPrice { amountMinor amount currency }\n      supplierCost { amountMinor amount currency }\n      margin { amountMinor amount currency }\n    }\n  }\n": types.PriceUpdatedWithCostDocument,
    "\n  subscription NewMessage($conversationId: ID!) {\n    newMessage(conversationId: $conversationId) { id occurredAt messageId conversationId senderId text }\n  }\n": types.NewMessageDocument,
    "\n  subscription UserTyping($conversationId: ID!) {\n    userTyping(conversationId: $conversationId) { id occurredAt conversationId userId state }\n  }\n": types.UserTypingDocument,
    "\n  subscription BookingUpdated($bookingId: ID) {\n    bookingUpdated(bookingId: $bookingId) {\n      id occurredAt bookingId hotelId guestId hostId status previousStatus checkIn checkOut\n      totalPrice { amountMinor amount currency }\n    }\n  }\n": types.BookingUpdatedDocument,
    "\n  subscription NotificationCreated($userId: ID) {\n    notificationCreated(userId: $userId) { id occurredAt notificationId userId kind title body link }\n  }\n": types.NotificationCreatedDocument,
    "\n  subscription ChatResponse($sessionId: ID!) {\n    chatResponse(sessionId: $sessionId) { id occurredAt sessionId replyId sequence status text }\n  }\n": types.ChatResponseDocument,
    "\n  subscription ConversationPresence($conversationId: ID!) {\n    presence(conversationId: $conversationId) {\n      conversationId kind present at\n      changes { userId change at }\n    }\n  }\n": types.ConversationPresenceDocument,
    "\n  subscription UserPresence($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {\n    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }\n  }\n": types.UserPresenceDocument,
    "\n  query UserPresenceNow($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {\n    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }\n  }\n": types.UserPresenceNowDocument,
    "\n  mutation SetTyping($conversationId: ID!, $state: TypingState!) {\n    setTyping(conversationId: $conversationId, state: $state)\n  }\n": types.SetTypingDocument,
    "\n  mutation StartChatSession {\n    startChatSession { id createdAt }\n  }\n": types.StartChatSessionDocument,
    "\n  mutation SendChatMessage($sessionId: ID!, $text: String!) {\n    sendChatMessage(sessionId: $sessionId, text: $text) { sessionId messageId }\n  }\n": types.SendChatMessageDocument,
    "\n  mutation RefreshSession($token: String!) {\n    refreshSession(token: $token) { userId roles tokenExpiresAt }\n  }\n": types.RefreshSessionDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Viewer {\n    viewer { id anonymous roles tokenExpiresAt }\n  }\n"): (typeof documents)["\n  query Viewer {\n    viewer { id anonymous roles tokenExpiresAt }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription PriceUpdated($hotelId: ID!) {\n    priceUpdated(hotelId: $hotelId) {\n      id occurredAt hotelId roomType\n      price { amountMinor amount currency }\n      previousPrice { amountMinor amount currency }\n    }\n  }\n"): (typeof documents)["\n  subscription PriceUpdated($hotelId: ID!) {\n    priceUpdated(hotelId: $hotelId) {\n      id occurredAt hotelId roomType\n      price { amountMinor amount currency }\n      previousPrice { amountMinor amount currency }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription PriceUpdatedWithCost($hotelId: ID!) {\n    priceUpdated(hotelId: $hotelId) {\n      id occurredAt hotelId roomType\n      price { amountMinor amount currency }\n      previousPrice { amountMinor amount currency }\n      supplierCost { amountMinor amount currency }\n      margin { amountMinor amount currency }\n    }\n  }\n"): (typeof documents)["\n  subscription PriceUpdatedWithCost($hotelId: ID!) {\n    priceUpdated(hotelId: $hotelId) {\n      id occurredAt hotelId roomType\n      price { amountMinor amount currency }\n      previousPrice { amountMinor amount currency }\n      supplierCost { amountMinor amount currency }\n      margin { amountMinor amount currency }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription NewMessage($conversationId: ID!) {\n    newMessage(conversationId: $conversationId) { id occurredAt messageId conversationId senderId text }\n  }\n"): (typeof documents)["\n  subscription NewMessage($conversationId: ID!) {\n    newMessage(conversationId: $conversationId) { id occurredAt messageId conversationId senderId text }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription UserTyping($conversationId: ID!) {\n    userTyping(conversationId: $conversationId) { id occurredAt conversationId userId state }\n  }\n"): (typeof documents)["\n  subscription UserTyping($conversationId: ID!) {\n    userTyping(conversationId: $conversationId) { id occurredAt conversationId userId state }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription BookingUpdated($bookingId: ID) {\n    bookingUpdated(bookingId: $bookingId) {\n      id occurredAt bookingId hotelId guestId hostId status previousStatus checkIn checkOut\n      totalPrice { amountMinor amount currency }\n    }\n  }\n"): (typeof documents)["\n  subscription BookingUpdated($bookingId: ID) {\n    bookingUpdated(bookingId: $bookingId) {\n      id occurredAt bookingId hotelId guestId hostId status previousStatus checkIn checkOut\n      totalPrice { amountMinor amount currency }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription NotificationCreated($userId: ID) {\n    notificationCreated(userId: $userId) { id occurredAt notificationId userId kind title body link }\n  }\n"): (typeof documents)["\n  subscription NotificationCreated($userId: ID) {\n    notificationCreated(userId: $userId) { id occurredAt notificationId userId kind title body link }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription ChatResponse($sessionId: ID!) {\n    chatResponse(sessionId: $sessionId) { id occurredAt sessionId replyId sequence status text }\n  }\n"): (typeof documents)["\n  subscription ChatResponse($sessionId: ID!) {\n    chatResponse(sessionId: $sessionId) { id occurredAt sessionId replyId sequence status text }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription ConversationPresence($conversationId: ID!) {\n    presence(conversationId: $conversationId) {\n      conversationId kind present at\n      changes { userId change at }\n    }\n  }\n"): (typeof documents)["\n  subscription ConversationPresence($conversationId: ID!) {\n    presence(conversationId: $conversationId) {\n      conversationId kind present at\n      changes { userId change at }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription UserPresence($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {\n    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }\n  }\n"): (typeof documents)["\n  subscription UserPresence($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {\n    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query UserPresenceNow($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {\n    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }\n  }\n"): (typeof documents)["\n  query UserPresenceNow($userIds: [ID!]!, $conversationId: ID, $bookingId: ID) {\n    userPresence(userIds: $userIds, conversationId: $conversationId, bookingId: $bookingId) { userId online at }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetTyping($conversationId: ID!, $state: TypingState!) {\n    setTyping(conversationId: $conversationId, state: $state)\n  }\n"): (typeof documents)["\n  mutation SetTyping($conversationId: ID!, $state: TypingState!) {\n    setTyping(conversationId: $conversationId, state: $state)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation StartChatSession {\n    startChatSession { id createdAt }\n  }\n"): (typeof documents)["\n  mutation StartChatSession {\n    startChatSession { id createdAt }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SendChatMessage($sessionId: ID!, $text: String!) {\n    sendChatMessage(sessionId: $sessionId, text: $text) { sessionId messageId }\n  }\n"): (typeof documents)["\n  mutation SendChatMessage($sessionId: ID!, $text: String!) {\n    sendChatMessage(sessionId: $sessionId, text: $text) { sessionId messageId }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RefreshSession($token: String!) {\n    refreshSession(token: $token) { userId roles tokenExpiresAt }\n  }\n"): (typeof documents)["\n  mutation RefreshSession($token: String!) {\n    refreshSession(token: $token) { userId roles tokenExpiresAt }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;