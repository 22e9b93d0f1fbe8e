import { useState, type FormEvent, type ReactNode } from 'react';
import { BOOKING_STATUS_CYCLE, CONCIERGE, CONVERSATION_ID, DEMO_BOOKING, DEMO_USERS, HOTELS, displayName, humanize, type DemoUser } from '../demo.js';
import { useAction } from '../hooks.js';
import {
  NOTIFICATION_KINDS,
  publishBookingUpdate,
  publishMessage,
  publishNotification,
  publishPrice,
  type BookingStatus,
  type NotificationKind,
} from '../service.js';

/**
 * Development only: publishes events as the backend services would, with a service token from
 * /dev/token. Everything it publishes travels through the gateway to every subscribed browser.
 */
export function ServicePanel({ viewer }: { viewer: DemoUser }) {
  return (
    <section className="card service-panel" aria-labelledby="service-title">
      <header className="card-header">
        <h2 id="service-title">Publish as a service</h2>
        <span className="card-hint">development only · service token from /dev/token</span>
      </header>
      <div className="service-grid">
        <PriceForm />
        <MessageForm />
        <BookingForm />
        <NotificationForm viewer={viewer} />
      </div>
    </section>
  );
}

function ServiceForm({
  title,
  detail,
  onSubmit,
  action,
  children,
}: {
  title: string;
  detail: ReactNode;
  onSubmit: () => Promise<void>;
  action: { label: string; testId: string };
  children?: ReactNode;
}) {
  const [published, setPublished] = useState(0);
  const submit = useAction(async () => {
    await onSubmit();
    setPublished((count) => count + 1);
  });
  return (
    <form
      className="service-form"
      onSubmit={(event: FormEvent) => {
        event.preventDefault();
        void submit.run();
      }}
    >
      <h3>{title}</h3>
      <p className="muted">{detail}</p>
      {children}
      <div className="service-actions">
        <button type="submit" data-testid={action.testId} disabled={submit.busy}>
          {action.label}
        </button>
        {submit.error ? (
          <span className="error" role="alert">
            {submit.error}
          </span>
        ) : published > 0 ? (
          <span className="ok" aria-live="polite">
            Published ✓{published > 1 ? ` ×${published}` : ''}
          </span>
        ) : null}
      </div>
    </form>
  );
}

function PriceForm() {
  const [hotelId, setHotelId] = useState<string>(HOTELS[0].id);
  const [amount, setAmount] = useState('129.00');
  const [lastPublished, setLastPublished] = useState<Readonly<Record<string, number>>>({});
  const amountMinor = Math.round(Number(amount) * 100);
  const valid = Number.isFinite(amountMinor) && amountMinor >= 0 && amount.trim() !== '';

  return (
    <ServiceForm
      title="Price change"
      detail={<>publishPrice, room DOUBLE, in EUR</>}
      action={{ label: 'Publish price', testId: 'publish-price' }}
      onSubmit={async () => {
        if (!valid) throw new Error('Enter a price such as 129.00');
        await publishPrice({ hotelId, amountMinor, previousAmountMinor: lastPublished[hotelId], currency: 'EUR' });
        setLastPublished((current) => ({ ...current, [hotelId]: amountMinor }));
        // Suggest a nearby price for the next click.
        const next = amountMinor + Math.round((Math.random() - 0.5) * 2_000);
        setAmount((Math.max(next, 1_000) / 100).toFixed(2));
      }}
    >
      <div className="field-row">
        <label>
          Hotel
          <select data-testid="service-price-hotel" value={hotelId} onChange={(event) => setHotelId(event.target.value)}>
            {HOTELS.map((hotel) => (
              <option key={hotel.id} value={hotel.id}>
                {hotel.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Price (EUR)
          <input
            data-testid="service-price-amount"
            inputMode="decimal"
            value={amount}
            aria-invalid={!valid}
            onChange={(event) => setAmount(event.target.value)}
          />
        </label>
      </div>
    </ServiceForm>
  );
}

const MESSAGE_SENDERS = [CONCIERGE.id, ...DEMO_USERS.map((user) => user.id)];

function MessageForm() {
  const [senderId, setSenderId] = useState<string>(CONCIERGE.id);
  const [text, setText] = useState('Your room is ready. Welcome!');
  return (
    <ServiceForm
      title="Message"
      detail={<>publishMessage into {CONVERSATION_ID}</>}
      action={{ label: 'Publish message', testId: 'publish-message' }}
      onSubmit={async () => {
        if (!text.trim()) throw new Error('Write a message first');
        await publishMessage(senderId, text.trim());
      }}
    >
      <div className="field-row">
        <label>
          Sender
          <select data-testid="service-message-sender" value={senderId} onChange={(event) => setSenderId(event.target.value)}>
            {MESSAGE_SENDERS.map((id) => (
              <option key={id} value={id}>
                {displayName(id)}
              </option>
            ))}
          </select>
        </label>
        <label className="grow">
          Text
          <input data-testid="service-message-text" value={text} onChange={(event) => setText(event.target.value)} />
        </label>
      </div>
    </ServiceForm>
  );
}

function BookingForm() {
  const [previous, setPrevious] = useState<BookingStatus | null>(null);
  const next: BookingStatus = previous
    ? (BOOKING_STATUS_CYCLE[(BOOKING_STATUS_CYCLE.indexOf(previous) + 1) % BOOKING_STATUS_CYCLE.length] ?? 'PENDING')
    : 'PENDING';
  return (
    <ServiceForm
      title="Booking update"
      detail={
        <>
          publishBookingUpdate for {DEMO_BOOKING.bookingId}: guest {displayName(DEMO_BOOKING.guestId)}, host{' '}
          {displayName(DEMO_BOOKING.hostId)}
        </>
      }
      action={{ label: `Set status: ${humanize(next)}`, testId: 'publish-booking' }}
      onSubmit={async () => {
        await publishBookingUpdate(next, previous);
        setPrevious(next);
      }}
    >
      <p className="cycle" aria-label="Status cycle">
        {BOOKING_STATUS_CYCLE.map((status) => (
          <span key={status} className={status === previous ? 'current' : status === next ? 'next' : undefined}>
            {humanize(status)}
          </span>
        ))}
      </p>
    </ServiceForm>
  );
}

function NotificationForm({ viewer }: { viewer: DemoUser }) {
  const [kind, setKind] = useState<NotificationKind>('SYSTEM');
  const [title, setTitle] = useState('Welcome to Tidings');
  return (
    <ServiceForm
      title="Notification"
      detail={<>publishNotification for {viewer.name} (you)</>}
      action={{ label: `Notify ${viewer.name}`, testId: 'publish-notification' }}
      onSubmit={async () => {
        if (!title.trim()) throw new Error('Give the notification a title');
        await publishNotification(viewer.id, kind, title.trim(), 'Sent from the demo notification service.');
      }}
    >
      <div className="field-row">
        <label>
          Kind
          <select data-testid="service-notification-kind" value={kind} onChange={(event) => setKind(event.target.value as NotificationKind)}>
            {NOTIFICATION_KINDS.map((value) => (
              <option key={value} value={value}>
                {humanize(value)}
              </option>
            ))}
          </select>
        </label>
        <label className="grow">
          Title
          <input data-testid="service-notification-title" value={title} onChange={(event) => setTitle(event.target.value)} />
        </label>
      </div>
    </ServiceForm>
  );
}
