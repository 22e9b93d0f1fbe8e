import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { decodeUtf8, parseEvent, type TidingsEvent } from '../events/contracts.js';
import { topicsOf } from '../events/topics.js';
import { recordArrival, type DropReason, type GatewayMetrics } from '../metrics/metrics.js';
import type { RedisConnections } from '../redis/connections.js';
import { redisKeys } from '../redis/keys.js';
import { defineScript } from '../redis/scripts.js';
import type { EventBus } from './event-bus.js';
import { LocalFanout, newTally } from './local-fanout.js';
import { deliveryAttributes, type EventTracing, type TracedStep } from '../observability/tracing.js';

export interface RedisEventBusOptions {
  readonly connections: RedisConnections;
  /** Prepended to every topic to form its channel, e.g. `tidings:` → `tidings:price:hotel-1`. */
  readonly prefix: string;
  /** Payloads larger than this are dropped unread. */
  readonly maxEventBytes: number;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /** A delivery span per event per instance when tracing (never per subscriber). */
  readonly tracing?: EventTracing;
}

/**
 * graphql-redis-subscriptions fires UNSUBSCRIBE and PUNSUBSCRIBE without handling their promises;
 * during a shutdown or an outage they reject ("Connection is closed") and would surface as
 * unhandled rejections. Their failure is harmless: a closed connection is subscribed to nothing.
 */
function withQuietUnsubscribe(subscriber: Redis): Redis {
  return new Proxy(subscriber, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      if (property === 'unsubscribe' || property === 'punsubscribe') {
        return (...args: unknown[]) =>
          (value as (...args: unknown[]) => Promise<unknown>).apply(target, args).catch(() => undefined);
      }
      return (value as (...args: unknown[]) => unknown).bind(target);
    },
  });
}

/**
 * Marks events a gateway published (mutations, the built-in chat responder), so every instance
 * can tell them from those services publish on the channels: for metrics only. The contract
 * ignores unknown envelope fields, so consumers never see it.
 */
const GATEWAY_MARK = 'gateway';

/** PUBLISHes an event, serialized once, on the channel of each of its topics. */
export async function publishToRedis(redis: Pick<Redis, 'publish'>, prefix: string, event: TidingsEvent, options: { byGateway?: boolean } = {}): Promise<void> {
  const payload = JSON.stringify(options.byGateway ? { ...event, publishedBy: GATEWAY_MARK } : event);
  await Promise.all(topicsOf(event).map((topic) => redis.publish(`${prefix}${topic}`, payload)));
}

/**
 * PUBLISHes many events in one pipeline (one round trip, in order), each serialized once, on the
 * channel of each of its topics. Resolves with whether each event's PUBLISHes all succeeded;
 * rejects when the pipeline could not be sent at all (Redis unreachable).
 */
export async function publishManyToRedis(
  redis: Pick<Redis, 'pipeline'>,
  prefix: string,
  events: readonly TidingsEvent[],
  options: { byGateway?: boolean } = {},
): Promise<boolean[]> {
  if (events.length === 0) return [];
  const pipeline = redis.pipeline();
  const commandsPerEvent = events.map((event) => {
    const payload = JSON.stringify(options.byGateway ? { ...event, publishedBy: GATEWAY_MARK } : event);
    const topics = topicsOf(event);
    for (const topic of topics) pipeline.publish(`${prefix}${topic}`, payload);
    return topics.length;
  });
  const results = (await pipeline.exec()) ?? [];
  let next = 0;
  return commandsPerEvent.map((count) => {
    const own = results.slice(next, (next += count));
    return own.length === count && own.every(([error]) => !error);
  });
}

/**
 * SET the event id's key unless it exists (expiring after ARGV[1] ms), and only then PUBLISH the
 * payload (ARGV[2]) on each channel (ARGV[3..]): one atomic step, so an id is remembered exactly
 * when its event went out. Returns 1 when published, 0 for a duplicate.
 */
const PUBLISH_ONCE = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
for i = 3, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[2]) end
return 1
`;

/**
 * Pub/sub across instances: one Redis channel per topic. An instance SUBSCRIBEs to a topic's
 * channel when its first local subscriber arrives and UNSUBSCRIBEs when the last leaves, so it
 * only receives events somebody on it wants. Each message is parsed and validated once here,
 * then handed to the local subscribers. Publishing (mutations, the built-in chat responder)
 * goes out through Redis too, so every event takes the same path and the same validation.
 */
/**
 * RedisPubSub's handler for every channel: messages are read from the connection directly. One
 * function for all topics (a closure per topic would keep its activation's scope alive).
 */
const ignoreMessage = (): void => undefined;

export function createRedisEventBus(options: RedisEventBusOptions): EventBus {
  const { connections, prefix, logger, metrics } = options;
  const pubsub = new RedisPubSub({
    publisher: connections.commands,
    subscriber: withQuietUnsubscribe(connections.subscriber),
    // Messages are read from the connection by onChannelMessage; RedisPubSub's own routing only
    // keeps SUBSCRIBE/UNSUBSCRIBE bookkeeping. On the Buffer events and without a deserializer or
    // reviver, it hands each message to ignoreMessage as it came: no decoding, parsing or copy.
    messageEventName: 'messageBuffer',
    pmessageEventName: 'pmessageBuffer',
  });
  const channelOf = (topic: string) => `${prefix}${topic}`;
  const keys = redisKeys(prefix);
  const publishOnce = defineScript(connections.commands, 'tidingsPublishOnce', PUBLISH_ONCE, 1);
  /** The pending or settled Redis subscription id of each active topic. */
  const redisSubscriptions = new Map<string, Promise<number | undefined>>();
  /** UNSUBSCRIBEs waiting for their SUBSCRIBE to settle, for close() to wait on. */
  const pendingUnsubscribes = new Set<Promise<void>>();

  const drop = (reason: DropReason, channel: string, details: Record<string, unknown> = {}, span?: TracedStep) => {
    metrics.eventsDropped.inc({ reason, source: 'redis' });
    logger.warn({ channel, reason, ...details }, 'dropped an invalid event');
    span?.end({ 'tidings.dropped': reason }, `dropped: ${reason}`);
  };

  const ingest = (topic: string, raw: Buffer) => {
    const channel = channelOf(topic);
    if (raw.byteLength > options.maxEventBytes) return drop('too_large', channel, { bytes: raw.byteLength });
    // Checked on the bytes: a lenient decoding would turn invalid ones into U+FFFD, which JSON
    // and the schemas accept.
    const text = decodeUtf8(raw);
    if (text === undefined) return drop('invalid_json', channel, { issues: ['not UTF-8'] });
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch {
      return drop('invalid_json', channel);
    }
    // Validation and hand-off, as one span continuing the publisher's trace.
    const traceparent = (document as { traceparent?: unknown } | null)?.traceparent;
    const span = options.tracing?.startDelivery(channel, typeof traceparent === 'string' ? traceparent : undefined);
    const result = parseEvent(document);
    const eventId = typeof (document as { id?: unknown } | null)?.id === 'string' ? (document as { id: string }).id.slice(0, 128) : undefined;
    if (!result.ok) return drop(result.reason, channel, { eventId, issues: result.issues.slice(0, 5) }, span);
    if (!topicsOf(result.event).includes(topic)) {
      return drop('topic_mismatch', channel, { eventId, type: result.event.type }, span);
    }
    recordArrival(metrics, result.event, (document as { publishedBy?: unknown }).publishedBy === GATEWAY_MARK ? 'gateway' : 'redis');
    if (!span) return fanout.deliver(topic, result.event);
    const tally = span.recording ? newTally() : undefined;
    fanout.deliver(topic, result.event, tally);
    span.end(deliveryAttributes(result.event, fanout.subscriberCount(topic), tally));
  };

  /**
   * Every message on this connection, as bytes (ioredis' `messageBuffer` event); the ones for a
   * locally active topic are ingested. Channel names are ours (prefix and ids), so UTF-8.
   */
  const onChannelMessage = (channelBytes: Buffer, raw: Buffer | undefined) => {
    const channel = channelBytes.toString('utf8');
    if (!channel.startsWith(prefix)) return;
    const topic = channel.slice(prefix.length);
    if (fanout.isActive(topic)) ingest(topic, raw ?? Buffer.alloc(0));
  };
  connections.subscriber.on('messageBuffer', onChannelMessage);

  let closing = false;
  /** Which activation of a topic is current, so a retry of an older one stops. */
  const activations = new Map<string, symbol>();
  const fanout = new LocalFanout({
    onTopicActive(topic) {
      // A refused SUBSCRIBE is tried again while the topic still has local subscribers: giving up
      // would leave them connected and silently receiving nothing.
      const activation = Symbol(topic);
      activations.set(topic, activation);
      const subscribeUntilDone = async (attempt: number): Promise<number | undefined> => {
        try {
          // Messages are taken from the connection directly (onChannelMessage), not from this
          // callback: RedisPubSub only routes a channel once its SUBSCRIBE callback has run, and
          // a message read in the same chunk as the SUBSCRIBE reply arrives before that.
          return await pubsub.subscribe<Buffer>(channelOf(topic), ignoreMessage);
        } catch (error) {
          logger.error({ err: error, channel: channelOf(topic), attempt }, 'redis SUBSCRIBE failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2_000)));
          // Stop once the topic went idle (or idle and active again: that activation subscribes).
          if (closing || activations.get(topic) !== activation) return undefined;
          return subscribeUntilDone(attempt + 1);
        }
      };
      redisSubscriptions.set(topic, subscribeUntilDone(0));
    },
    onTopicIdle(topic) {
      activations.delete(topic);
      const subscription = redisSubscriptions.get(topic);
      redisSubscriptions.delete(topic);
      // UNSUBSCRIBE only once a SUBSCRIBE still in flight has settled, or the channel would stay
      // subscribed with nobody listening. In the background: the leaving subscriber never waits.
      const unsubscribed = (subscription ?? Promise.resolve(undefined)).then((id) => {
        if (id !== undefined) pubsub.unsubscribe(id);
      });
      pendingUnsubscribes.add(unsubscribed);
      void unsubscribed.finally(() => pendingUnsubscribes.delete(unsubscribed));
    },
  });

  return {
    publish: (event: TidingsEvent) => publishToRedis(connections.commands, prefix, event, { byGateway: true }),
    publishMany: (events) => publishManyToRedis(connections.commands, prefix, events, { byGateway: true }),
    async publishOnce(event, windowMs) {
      const payload = JSON.stringify({ ...event, publishedBy: GATEWAY_MARK });
      const channels = topicsOf(event).map(channelOf);
      return (await publishOnce(keys.publishedEvent(event.id), Math.max(1, Math.round(windowMs)), payload, ...channels)) === 1;
    },
    subscribe: (topic) => fanout.subscribe(topic),
    listen: (topic, listener, options) => fanout.listen(topic, listener, options),
    activeTopicCount: () => fanout.activeTopicCount(),
    subscriberCount: (topic) => fanout.subscriberCount(topic),
    isReady: () => connections.isReady(),
    async close() {
      closing = true;
      connections.subscriber.off('messageBuffer', onChannelMessage);
      fanout.endAll();
      // Idle topics UNSUBSCRIBE as their subscribers end; wait for those still settling.
      // The connections are closed by their owner (the composition root).
      await Promise.allSettled([...redisSubscriptions.values(), ...pendingUnsubscribes]);
    },
  };
}
