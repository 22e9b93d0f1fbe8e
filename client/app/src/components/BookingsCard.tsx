import { useState } from 'react';
import { BookingUpdatedSubscription, NotificationCreatedSubscription } from '@tidings/client';
import type {
  BookingUpdatedSubscription as BookingUpdatedData,
  NotificationCreatedSubscription as NotificationCreatedData,
} from '@tidings/client/types';
import { displayName, formatMoney, formatTime, hotelName, humanize, type DemoUser } from '../demo.js';
import { useEventStream, useOnline } from '@tidings/client/react';
import { PresenceDot } from './PresenceDot.js';
import { useToast } from './Toasts.js';

type Booking = BookingUpdatedData['bookingUpdated'];
type Notification = NotificationCreatedData['notificationCreated'] & { readonly read: boolean };

/**
 * The viewer's bookings and notifications: toasts as they arrive, a panel with an unread count,
 * and beside each booking whether its other party (the host, for a guest) is online.
 */
export function BookingsCard({ viewer, resubscribeKey }: { viewer: DemoUser; resubscribeKey: number }) {
  const toast = useToast();
  const [bookings, setBookings] = useState<ReadonlyMap<string, Booking>>(new Map());
  const [notifications, setNotifications] = useState<readonly Notification[]>([]);
  const [panelOpen, setPanelOpen] = useState(false);

  const bookingStream = useEventStream(BookingUpdatedSubscription, {}, ({ bookingUpdated: booking }) => {
    setBookings((current) => new Map(current).set(booking.bookingId, booking));
    toast({
      id: booking.id,
      tone: 'booking',
      title: `Booking ${booking.bookingId}: ${humanize(booking.status)}`,
      body: `${hotelName(booking.hotelId)} · ${booking.checkIn} → ${booking.checkOut}`,
    });
  });

  const notificationStream = useEventStream(NotificationCreatedSubscription, {}, ({ notificationCreated: notification }) => {
    setNotifications((current) =>
      current.some((shown) => shown.id === notification.id) ? current : [{ ...notification, read: panelOpen }, ...current],
    );
    toast({ id: notification.id, tone: 'notification', title: notification.title, body: notification.body });
  });

  const unread = notifications.filter((notification) => !notification.read).length;
  const togglePanel = () => {
    setPanelOpen((open) => !open);
    // Opening the panel marks everything read.
    setNotifications((current) => current.map((notification) => (notification.read ? notification : { ...notification, read: true })));
  };

  const error = bookingStream.error ?? notificationStream.error;
  return (
    <section className="card bookings" aria-labelledby="bookings-title">
      <header className="card-header">
        <h2 id="bookings-title">Bookings &amp; notifications</h2>
        <button
          type="button"
          className="notifications-button"
          data-testid="notifications-toggle"
          aria-expanded={panelOpen}
          aria-controls="notification-panel"
          onClick={togglePanel}
        >
          Notifications
          {unread > 0 ? (
            <span className="count" data-testid="unread-count" aria-label={`${unread} unread`}>
              {unread}
            </span>
          ) : null}
        </button>
      </header>

      {panelOpen ? (
        <div id="notification-panel" className="notification-panel" data-testid="notification-panel">
          {notifications.length === 0 ? <p className="empty">No notifications yet.</p> : null}
          <ul>
            {notifications.map((notification) => (
              <li key={notification.id}>
                <span className="pill">{humanize(notification.kind)}</span>
                <div>
                  <strong>{notification.title}</strong>
                  {notification.body ? <p>{notification.body}</p> : null}
                </div>
                <time className="muted" dateTime={notification.occurredAt}>
                  {formatTime(notification.occurredAt)}
                </time>
              </li>
            ))}
          </ul>
        </div>
      ) : null}

      <h3>Your bookings</h3>
      {bookings.size === 0 ? <p className="empty">No booking updates yet. They arrive for the booking&apos;s guest and host.</p> : null}
      <ul className="booking-list" data-testid="booking-list">
        {[...bookings.values()].map((booking) => (
          <li key={booking.bookingId} className="booking" data-testid={`booking-${booking.bookingId}`}>
            <div>
              <strong>{booking.bookingId}</strong> · {hotelName(booking.hotelId)}
              <div className="muted">
                {booking.checkIn} → {booking.checkOut} · guest {displayName(booking.guestId)}, host {displayName(booking.hostId)}
                {booking.totalPrice ? ` · ${formatMoney(booking.totalPrice)}` : ''}
              </div>
              <OtherParty booking={booking} viewerId={viewer.id} resubscribeKey={resubscribeKey} />
            </div>
            <span key={booking.id} className={`status status-${booking.status.toLowerCase()} flash`} data-testid="booking-status">
              {humanize(booking.status)}
            </span>
          </li>
        ))}
      </ul>
      {error ? <p className="error">{error.message}</p> : null}
    </section>
  );
}

/** Whether the booking's other party is online (the host for its guest, the guest for its host), from useOnline. */
function OtherParty({ booking, viewerId, resubscribeKey }: { booking: Booking; viewerId: string; resubscribeKey: number }) {
  const isGuest = booking.guestId === viewerId;
  const other = isGuest ? booking.hostId : booking.hostId === viewerId ? booking.guestId : undefined;
  const role = isGuest ? 'host' : 'guest';
  const { online, status, error } = useOnline(other ? [other] : [], { bookingId: booking.bookingId }, { resubscribeKey });
  // Only a party sees the other's state (bookingUpdated brings only the viewer's own bookings anyway).
  if (!other) return null;
  if (error) return <div className="party error">{error.message}</div>;
  const on = online.get(other) ?? false;
  const known = online.has(other);
  return (
    <div className="party" data-testid="booking-party" data-online={known ? on : undefined} data-status={status}>
      <PresenceDot on={on} current={status === 'live'} />
      Your {role} {displayName(other)} is <strong>{known ? (on ? 'online' : 'offline') : '…'}</strong>
    </div>
  );
}
