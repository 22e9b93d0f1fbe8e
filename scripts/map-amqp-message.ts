/**
 * What one RabbitMQ message becomes, without a broker (docs/INGRESS.md):
 *   npx tsx scripts/map-amqp-message.ts <routing key> '<JSON body>' [--currency EUR] [--guest ID --host ID]
 * Prints the event as Tidings would publish it, or the dead-letter reason and issues (exit 1).
 * For booking messages, --guest and --host stand for the parties registered with the gateway.
 */
import { parseArgs } from 'node:util';
import { mapMessage } from '../src/ingress/amqp-messages.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { currency: { type: 'string', default: 'EUR' }, guest: { type: 'string' }, host: { type: 'string' } },
});
const [routingKey, body] = positionals;
if (!routingKey || body === undefined) {
  process.stderr.write("usage: npx tsx scripts/map-amqp-message.ts <routing key> '<JSON body>' [--currency EUR] [--guest ID --host ID]\n");
  process.exit(2);
}
const { guest, host } = values;
const mapped = await mapMessage(routingKey, Buffer.from(body), {
  maxBytes: 64 * 1024,
  bookingCurrency: values.currency,
  partiesOf: async () => (guest && host ? { guestId: guest, hostId: host } : undefined),
});
if (mapped.ok) {
  process.stdout.write(`${JSON.stringify(mapped.event, null, 2)}\n`);
} else {
  process.stdout.write(`${JSON.stringify({ deadLettered: mapped.reason, issues: mapped.issues }, null, 2)}\n`);
  process.exitCode = 1;
}
