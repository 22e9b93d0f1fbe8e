import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { EventPublisher } from '../publish/event-publisher.js';
import { BOUND_ROUTING_KEYS, kindOf, mapMessage, type MappingContext, type PoisonReason } from './amqp-messages.js';

/**
 * RabbitMQ ingress: consumes the events existing services publish on their topic exchange and
 * publishes each through the gateway's publish path (EventPublisher.publishOnce), so it reaches
 * subscribers on every instance, is counted, and goes out once however often it is delivered.
 *
 * The contract (docs/INGRESS.md):
 * - Every instance consumes one shared durable queue (competing consumers): each message is
 *   taken by one instance. The queue is bound to BOUND_ROUTING_KEYS on the exchange; exchange,
 *   queue, dead-letter exchange and queue are declared (idempotently) on every connect.
 * - A message is acknowledged only once its event was published, or found already published (a
 *   redelivery: same derived event id within the de-duplication window), or it was moved to the
 *   dead-letter exchange (publisher-confirmed). When publishing fails (Redis unreachable) it is
 *   handed back to the queue after a growing delay (up to MAX_REQUEUE_DELAY_MS), never dropped.
 * - A message is acknowledged on the channel that delivered it, or not at all: once that
 *   channel is gone the broker has already put the message back for another consumer.
 * - Connection loss is recovered by amqplib (its opt-in recovery, `setup` on every connect); a
 *   channel that closes on its own while the connection lives is opened again here.
 */
export interface AmqpIngress {
  /** Connects in the background (a broker that is down at start is retried forever). */
  start(): void;
  /** `consuming` once the queue's consumer is registered; what /ready and /stats report. */
  state(): AmqpIngressState;
  /** Stops taking messages, lets those being published finish (at most `graceMs`), then disconnects. */
  stop(graceMs: number): Promise<void>;
}

export type AmqpIngressState = 'connecting' | 'consuming' | 'disconnected' | 'stopped';

/** The configured names and limits (AMQP_*), and `instanceId`, which names the connection and the consumer in RabbitMQ's management UI. */
export type AmqpIngressOptions = Omit<NonNullable<Config['amqp']>, 'bookingCurrency'> & { readonly instanceId: string };

/** Headers a dead-lettered message carries besides its own (docs/INGRESS.md). */
export const DEAD_LETTER_HEADERS = {
  reason: 'x-tidings-reason',
  issues: 'x-tidings-issues',
  exchange: 'x-tidings-exchange',
  routingKey: 'x-tidings-routing-key',
  deadLetteredAt: 'x-tidings-dead-lettered-at',
  instance: 'x-tidings-instance',
} as const;

const FIRST_REQUEUE_DELAY_MS = 200;
const MAX_REQUEUE_DELAY_MS = 5_000;
/** Between attempts to open a channel again on a live connection: doubling from the first. */
const FIRST_CHANNEL_RETRY_MS = 1_000;
const MAX_CHANNEL_RETRY_MS = 30_000;

/** `work`, or undefined once `ms` have passed (a broker that does not answer must not hold up a shutdown). */
async function within<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}

/** Message properties a dead-lettered copy keeps: all but `userId` (the broker checks it against the publishing user) and `expiration`. */
function copiedProperties(properties: ConsumeMessage['properties']) {
  const { userId: _userId, expiration: _expiration, headers: _headers, deliveryMode: _deliveryMode, ...kept } = properties;
  return Object.fromEntries(Object.entries(kept).filter(([, value]) => value !== undefined));
}

export function createAmqpIngress(deps: {
  readonly options: AmqpIngressOptions;
  readonly publisher: EventPublisher;
  readonly mapping: MappingContext;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
}): AmqpIngress {
  const { options, publisher, mapping, metrics } = deps;
  const logger = deps.logger.child({ component: 'amqp-ingress', queue: options.queue });
  let state: AmqpIngressState = 'connecting';
  let connection: Awaited<ReturnType<typeof connect>> | undefined;
  /** The channel consuming now and its consumer tag, for stop() to cancel. */
  let consuming: { channel: ConfirmChannel; consumerTag: string } | undefined;
  let stopping = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  /** Messages waiting to be handed back (publishing failed) and channels waiting to be reopened. */
  const timers = new Set<NodeJS.Timeout>();
  /** Consecutive failed publishes: the requeue delay grows with them and resets on success. */
  let failures = 0;
  /** Consecutive failed channel reopenings on a live connection. */
  let channelFailures = 0;
  /** Connections that have our 'error' listener (amqplib adds its own only after setup). */
  const watchedModels = new WeakSet<ChannelModel>();
  /** The last warning, so a condition that persists logs once, not once per attempt. */
  let lastWarning: string | undefined;
  const warnOnce = (details: Record<string, unknown>, message: string) => {
    const key = `${message}\n${String(details['err'] ?? '')}`;
    if (key === lastWarning) return;
    lastWarning = key;
    logger.warn(details, message);
  };

  const setState = (next: AmqpIngressState) => {
    state = next;
    metrics.amqpConsumerUp.set({ queue: options.queue }, next === 'consuming' ? 1 : 0);
  };
  setState('connecting');

  function connect() {
    return amqp.connect(options.url, {
      clientProperties: { connection_name: `tidings-${options.instanceId}` },
      recovery: {
        waitForConnect: false,
        initialDelay: 200,
        maxDelay: 5_000,
        maxRetries: Infinity,
        setup: (model: ChannelModel) => consumeOn(model),
      },
    });
  }

  /** Declares the topology and starts consuming on a new channel of `model`. */
  async function consumeOn(model: ChannelModel): Promise<void> {
    if (stopping) return;
    // amqplib's recovery listens for the connection's errors only once setup is done: an error
    // during setup (a socket reset, a missed heartbeat) would otherwise be thrown uncaught.
    if (!watchedModels.has(model)) {
      watchedModels.add(model);
      model.on('error', (error: Error) => warnOnce({ err: error.message }, 'amqp connection error'));
    }
    const channel = await model.createConfirmChannel();
    let open = true;
    channel.on('error', (error: Error) => warnOnce({ err: error.message }, 'amqp channel error'));
    // An exception in one of our listeners, which amqplib reports instead of throwing.
    channel.on('handler-error', (error: Error) => logger.error({ err: error }, 'amqp channel handler failed'));
    channel.on('close', () => {
      open = false;
      if (consuming?.channel === channel) consuming = undefined;
      if (stopping) return;
      setState('disconnected');
      // The connection may still be up (a channel-level error such as a refused declaration):
      // open a channel again on it, less often while it keeps failing. If the connection went
      // too, its recovery calls setup again and this attempt fails at once.
      const delay = Math.min(FIRST_CHANNEL_RETRY_MS * 2 ** channelFailures, MAX_CHANNEL_RETRY_MS);
      channelFailures += 1;
      const retry = setTimeout(() => {
        timers.delete(retry);
        consumeOn(model).catch((error: unknown) => warnOnce({ err: String(error) }, 'amqp channel not reopened; retrying'));
      }, delay);
      timers.add(retry);
    });
    const isOpen = () => open;

    await channel.assertExchange(options.exchange, 'topic', { durable: true });
    await channel.assertExchange(options.deadLetterExchange, 'fanout', { durable: true });
    await channel.assertQueue(options.deadLetterQueue, { durable: true });
    await channel.bindQueue(options.deadLetterQueue, options.deadLetterExchange, '');
    await channel.assertQueue(options.queue, { durable: true });
    for (const key of BOUND_ROUTING_KEYS) await channel.bindQueue(options.queue, options.exchange, key);
    await channel.prefetch(options.prefetch);
    const { consumerTag } = await channel.consume(
      options.queue,
      (message) => {
        // null: the broker cancelled the consumer (the queue was deleted): declare it again.
        if (message === null) {
          logger.warn('amqp consumer cancelled by the broker; consuming again');
          void channel.close().catch(() => undefined);
          return;
        }
        void handle(channel, isOpen, message);
      },
      { noAck: false, consumerTag: `tidings-${options.instanceId}-${Math.random().toString(36).slice(2, 8)}` },
    );
    if (stopping) {
      await channel.close().catch(() => undefined);
      return;
    }
    consuming = { channel, consumerTag };
    channelFailures = 0;
    lastWarning = undefined;
    if (state !== 'consuming') logger.info({ exchange: options.exchange, routingKeys: BOUND_ROUTING_KEYS }, 'consuming RabbitMQ events');
    setState('consuming');
  }

  /** Runs `settle` on the delivering channel unless it is gone (the broker then requeued the message). */
  const settleOn = (channel: Channel, isOpen: () => boolean, settle: (channel: Channel) => void) => {
    if (!isOpen()) return;
    try {
      settle(channel);
    } catch (error) {
      logger.debug({ err: String(error) }, 'amqp message not settled: its channel closed');
    }
  };

  const requeueLater = (channel: Channel, isOpen: () => boolean, message: ConsumeMessage) => {
    // Stopping: the connection closes next, which hands the message back by itself.
    if (stopping) return;
    failures += 1;
    const delay = Math.min(FIRST_REQUEUE_DELAY_MS * 2 ** (failures - 1), MAX_REQUEUE_DELAY_MS);
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!isOpen()) return;
      metrics.amqpRequeued.inc();
      settleOn(channel, isOpen, (open) => open.nack(message, false, true));
    }, delay);
    timers.add(timer);
  };

  const deadLetter = (channel: ConfirmChannel, isOpen: () => boolean, message: ConsumeMessage, reason: PoisonReason, issues: readonly string[]) =>
    new Promise<void>((resolve) => {
      const { routingKey, exchange } = message.fields;
      const headers = {
        ...(message.properties.headers ?? {}),
        [DEAD_LETTER_HEADERS.reason]: reason,
        [DEAD_LETTER_HEADERS.issues]: issues.join('; ').slice(0, 2_000),
        [DEAD_LETTER_HEADERS.exchange]: exchange,
        [DEAD_LETTER_HEADERS.routingKey]: routingKey,
        [DEAD_LETTER_HEADERS.deadLetteredAt]: new Date().toISOString(),
        [DEAD_LETTER_HEADERS.instance]: options.instanceId,
      };
      const done = (error: unknown) => {
        if (error) {
          logger.warn({ err: String(error), routingKey, reason }, 'amqp dead-lettering failed; handing the message back');
          requeueLater(channel, isOpen, message);
        } else {
          metrics.amqpDeadLettered.inc({ reason });
          // The contents may hold personal data: the routing key, reason and size say enough (the
          // issues name fields and rules, never values; the dead-letter queue has the message).
          logger.warn({ routingKey: routingKey.slice(0, 128), reason, issues, bytes: message.content.byteLength }, 'dead-lettered a RabbitMQ message');
          settleOn(channel, isOpen, (open) => open.ack(message));
        }
        resolve();
      };
      try {
        channel.publish(
          options.deadLetterExchange,
          routingKey,
          message.content,
          { ...copiedProperties(message.properties), persistent: true, headers },
          done,
        );
      } catch (error) {
        done(error);
      }
    });

  async function handle(channel: ConfirmChannel, isOpen: () => boolean, message: ConsumeMessage): Promise<void> {
    inFlight += 1;
    const { routingKey } = message.fields;
    metrics.amqpConsumed.inc({ kind: kindOf(routingKey) });
    if (message.fields.redelivered) metrics.amqpRedelivered.inc();
    try {
      let mapped;
      try {
        mapped = await mapMessage(routingKey, message.content, mapping);
      } catch (error) {
        // Only the booking lookup can throw: Redis is unreachable, so try again later.
        logger.warn({ err: String(error), routingKey }, 'amqp message could not be mapped now; handing it back');
        requeueLater(channel, isOpen, message);
        return;
      }
      if (!mapped.ok) {
        await deadLetter(channel, isOpen, message, mapped.reason, mapped.issues);
        return;
      }
      let published: boolean;
      try {
        // A service's own trace continues when its message carries a W3C `traceparent` header.
        const traceparent = message.properties.headers?.['traceparent'];
        published = await publisher.publishOnce(mapped.event, { windowMs: options.dedupeWindowMs, source: 'amqp', traceparent: typeof traceparent === 'string' ? traceparent : mapped.event.traceparent });
      } catch (error) {
        // Not acknowledged: the message comes back later. Logged once per outage, not per message.
        if (failures === 0) logger.warn({ err: String(error) }, 'cannot publish RabbitMQ events now (Redis unreachable?); handing them back until it can');
        requeueLater(channel, isOpen, message);
        return;
      }
      if (failures > 0) logger.info('publishing RabbitMQ events again');
      failures = 0;
      if (!published) metrics.amqpDuplicates.inc();
      settleOn(channel, isOpen, (open) => open.ack(message));
    } catch (error) {
      logger.error({ err: error, routingKey }, 'amqp message handling failed; handing it back');
      requeueLater(channel, isOpen, message);
    } finally {
      inFlight -= 1;
      if (inFlight === 0) idle?.();
    }
  }

  return {
    start() {
      void connect().then(
        (recovering) => {
          connection = recovering;
          if (stopping) void recovering.close().catch(() => undefined);
          let lastError: string | undefined;
          const report = (error: Error) => {
            if (error.message === lastError) return;
            lastError = error.message;
            logger.warn({ err: error.message }, 'RabbitMQ unreachable; retrying');
          };
          recovering.on('connect-failed', report);
          recovering.on('error', report);
          recovering.on('disconnect', (error: Error) => {
            lastError = undefined;
            if (!stopping) setState('disconnected');
            report(error);
          });
          recovering.on('connect', () => {
            if (lastError) logger.info('RabbitMQ connection restored');
            lastError = undefined;
          });
        },
        (error: unknown) => {
          logger.error({ err: String(error) }, 'RabbitMQ ingress could not start');
          setState('disconnected');
        },
      );
    },
    state: () => state,
    async stop(graceMs) {
      stopping = true;
      const deadline = Date.now() + graceMs;
      const left = () => Math.max(0, deadline - Date.now());
      const current = consuming;
      consuming = undefined;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      // No new deliveries; those held by this instance are finished or go back to the queue.
      // Every step is bounded: a broker that stopped answering must not hold up the shutdown.
      if (current) await within(current.channel.cancel(current.consumerTag).catch(() => undefined), left());
      if (inFlight > 0) await within(new Promise<void>((resolve) => (idle = resolve)), left());
      // Closing the connection hands every unacknowledged message back to the broker.
      await within(connection?.close().catch(() => undefined) ?? Promise.resolve(), Math.max(left(), 200));
      setState('stopped');
    },
  };
}
