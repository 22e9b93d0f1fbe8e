import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
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

export interface AmqpIngressOptions {
  readonly url: string;
  readonly exchange: string;
  readonly queue: string;
  readonly deadLetterExchange: string;
  readonly deadLetterQueue: string;
  readonly prefetch: number;
  readonly dedupeWindowMs: number;
  /** Names the connection and the consumer in RabbitMQ's management UI. */
  readonly instanceId: string;
}

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
/** Between attempts to open a channel again on a live connection. */
const CHANNEL_RETRY_MS = 1_000;

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
    const channel = await model.createConfirmChannel();
    let open = true;
    channel.on('error', (error: Error) => logger.warn({ err: error.message }, 'amqp channel error'));
    channel.on('close', () => {
      open = false;
      if (consuming?.channel === channel) consuming = undefined;
      if (stopping) return;
      setState('disconnected');
      // The connection may still be up (a channel-level error): open a channel again on it. If
      // the connection went too, its recovery calls setup again and this attempt fails quietly.
      const retry = setTimeout(() => {
        timers.delete(retry);
        consumeOn(model).catch((error: unknown) => logger.warn({ err: String(error) }, 'amqp channel not reopened; the connection is recovered or retried'));
      }, CHANNEL_RETRY_MS);
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
    failures += 1;
    const delay = Math.min(FIRST_REQUEUE_DELAY_MS * 2 ** (failures - 1), MAX_REQUEUE_DELAY_MS);
    const timer = setTimeout(() => {
      timers.delete(timer);
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
          // The contents may hold personal data: the routing key, reason and size say enough.
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
          {
            persistent: true,
            headers,
            contentType: message.properties.contentType,
            messageId: message.properties.messageId,
            timestamp: message.properties.timestamp,
          },
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
        published = await publisher.publishOnce(mapped.event, { windowMs: options.dedupeWindowMs, source: 'amqp' });
      } catch {
        // Logged by the publisher. Not acknowledged: the message comes back later.
        requeueLater(channel, isOpen, message);
        return;
      }
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
      const current = consuming;
      consuming = undefined;
      // No new deliveries; those held by this instance are finished or go back to the queue.
      if (current) await current.channel.cancel(current.consumerTag).catch(() => undefined);
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => (idle = resolve)),
          new Promise((resolve) => setTimeout(resolve, graceMs).unref()),
        ]);
      }
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      // Closing the connection hands every unacknowledged message back to the broker.
      await connection?.close().catch(() => undefined);
      setState('stopped');
    },
  };
}
