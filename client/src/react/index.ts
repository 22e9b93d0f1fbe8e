/**
 * React bindings for `@tidings/client`: `react` and `urql` are peer dependencies, needed only by
 * this entry point (`@tidings/client/react`).
 */
export { TidingsProvider, useTidingsClient, type TidingsProviderProps } from './provider.js';
export { useTidingsConnection } from './use-tidings-connection.js';
export { useEventStream, type EventStream, type EventStreamOptions } from './use-event-stream.js';
export { usePresence, type Presence, type PresenceStatus } from './use-presence.js';
export { useOnline, type Online, type OnlineScope } from './use-online.js';
