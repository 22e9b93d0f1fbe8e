/** GraphQL documents shared by the transport tests. */

export const PRICE_UPDATED = /* GraphQL */ `
  subscription Prices($hotelId: ID!) {
    priceUpdated(hotelId: $hotelId) {
      id occurredAt hotelId roomType
      price { amountMinor currency amount }
      previousPrice { amount currency }
    }
  }`;

export const PRICE_UPDATED_ADMIN_FIELDS = /* GraphQL */ `
  subscription PricesWithCost($hotelId: ID!) {
    priceUpdated(hotelId: $hotelId) {
      id hotelId
      price { amount currency }
      supplierCost { amount currency }
      margin { amount currency }
    }
  }`;

export const PUBLISH_PRICE = /* GraphQL */ `
  mutation PublishPrice($input: PublishPriceInput!) {
    publishPrice(input: $input) { eventId type occurredAt }
  }`;

export const NEW_MESSAGE = /* GraphQL */ `
  subscription Messages($conversationId: ID!) {
    newMessage(conversationId: $conversationId) { id occurredAt messageId conversationId senderId text }
  }`;

export const PUBLISH_MESSAGE = /* GraphQL */ `
  mutation PublishMessage($input: PublishMessageInput!) {
    publishMessage(input: $input) { eventId }
  }`;

export const ADD_MEMBERS = /* GraphQL */ `
  mutation AddMembers($conversationId: ID!, $userIds: [ID!]!) {
    addConversationMembers(conversationId: $conversationId, userIds: $userIds)
  }`;

export const REMOVE_MEMBERS = /* GraphQL */ `
  mutation RemoveMembers($conversationId: ID!, $userIds: [ID!]!) {
    removeConversationMembers(conversationId: $conversationId, userIds: $userIds)
  }`;

export const USER_TYPING = /* GraphQL */ `
  subscription Typing($conversationId: ID!) {
    userTyping(conversationId: $conversationId) { id occurredAt conversationId userId state }
  }`;

export const SET_TYPING = /* GraphQL */ `
  mutation SetTyping($conversationId: ID!, $state: TypingState!) {
    setTyping(conversationId: $conversationId, state: $state)
  }`;

export const BOOKING_UPDATED = /* GraphQL */ `
  subscription Bookings($bookingId: ID) {
    bookingUpdated(bookingId: $bookingId) {
      id occurredAt bookingId hotelId guestId hostId status previousStatus checkIn checkOut
      totalPrice { amount currency }
    }
  }`;

export const PUBLISH_BOOKING = /* GraphQL */ `
  mutation PublishBooking($input: PublishBookingUpdateInput!) {
    publishBookingUpdate(input: $input) { eventId }
  }`;

export const REGISTER_BOOKING = /* GraphQL */ `
  mutation RegisterBooking($bookingId: ID!, $guestId: ID!, $hostId: ID!) {
    registerBooking(bookingId: $bookingId, guestId: $guestId, hostId: $hostId)
  }`;

export const NOTIFICATION_CREATED = /* GraphQL */ `
  subscription Notifications($userId: ID) {
    notificationCreated(userId: $userId) { id occurredAt notificationId userId kind title body link }
  }`;

export const PUBLISH_NOTIFICATION = /* GraphQL */ `
  mutation PublishNotification($input: PublishNotificationInput!) {
    publishNotification(input: $input) { eventId }
  }`;

export const START_CHAT = /* GraphQL */ `
  mutation StartChat { startChatSession { id createdAt } }`;

export const SEND_CHAT = /* GraphQL */ `
  mutation SendChat($sessionId: ID!, $text: String!) {
    sendChatMessage(sessionId: $sessionId, text: $text) { sessionId messageId }
  }`;

export const CHAT_RESPONSE = /* GraphQL */ `
  subscription Chat($sessionId: ID!) {
    chatResponse(sessionId: $sessionId) { id occurredAt sessionId replyId sequence status text }
  }`;

export const VIEWER = /* GraphQL */ `query Viewer { viewer { id anonymous roles tokenExpiresAt } }`;

export const priceInput = (hotelId: string, amountMinor = 12_900) => ({
  input: {
    hotelId,
    roomType: 'DOUBLE',
    price: { amountMinor, currency: 'EUR' },
    previousPrice: { amountMinor: 13_900, currency: 'EUR' },
    supplierCost: { amountMinor: 10_000, currency: 'EUR' },
  },
});

export const bookingInput = (bookingId: string, guestId: string, hostId: string, status = 'CONFIRMED') => ({
  input: {
    bookingId,
    hotelId: 'hotel-1',
    guestId,
    hostId,
    status,
    previousStatus: 'PENDING',
    checkIn: '2026-12-24',
    checkOut: '2026-12-27',
    totalPrice: { amountMinor: 45_000, currency: 'EUR' },
  },
});
