import { useSubscription } from 'urql';
import { PriceUpdatedSubscription, PriceUpdatedWithCostSubscription } from '@tidings/client';
import { HOTELS, formatMoney, formatTime } from '../demo.js';

interface Money {
  readonly amount: string;
  readonly amountMinor: number;
  readonly currency: string;
}

/** What one price row shows; the cost fields only arrive for admins. */
interface PriceEvent {
  readonly id: string;
  readonly occurredAt: string;
  readonly roomType: string;
  readonly price: Money;
  readonly previousPrice: Money | null;
  readonly supplierCost?: Money | null;
  readonly margin?: Money | null;
}

/** Live room prices of the three demo hotels. Admins also see the supplier cost and the margin. */
export function PricesCard({ isAdmin }: { isAdmin: boolean }) {
  return (
    <section className="card" aria-labelledby="prices-title">
      <header className="card-header">
        <h2 id="prices-title">Prices</h2>
        <span className="card-hint">priceUpdated{isAdmin ? ' · with cost and margin (admin)' : ''}</span>
      </header>
      <ul className="price-list">
        {HOTELS.map((hotel) =>
          isAdmin ? (
            <AdminPriceRow key={hotel.id} hotel={hotel} />
          ) : (
            <PriceRow key={hotel.id} hotel={hotel} />
          ),
        )}
      </ul>
    </section>
  );
}

type Hotel = (typeof HOTELS)[number];

function PriceRow({ hotel }: { hotel: Hotel }) {
  const [{ data }] = useSubscription({ query: PriceUpdatedSubscription, variables: { hotelId: hotel.id } });
  return <PriceView hotel={hotel} event={data?.priceUpdated} showCost={false} />;
}

function AdminPriceRow({ hotel }: { hotel: Hotel }) {
  const [{ data }] = useSubscription({ query: PriceUpdatedWithCostSubscription, variables: { hotelId: hotel.id } });
  return <PriceView hotel={hotel} event={data?.priceUpdated} showCost />;
}

function PriceView({ hotel, event, showCost }: { hotel: Hotel; event: PriceEvent | undefined; showCost: boolean }) {
  const direction =
    event?.previousPrice && event.previousPrice.currency === event.price.currency
      ? Math.sign(event.price.amountMinor - event.previousPrice.amountMinor)
      : 0;
  return (
    <li className="price-row">
      <div className="price-hotel">
        <strong>{hotel.name}</strong>
        <span className="muted">
          {hotel.city} · {hotel.id}
          {event ? ` · ${event.roomType.toLowerCase()}` : ''}
        </span>
      </div>
      <div className="price-value">
        {event ? (
          <>
            {/* Keyed by event id: a new price remounts the element, which replays the flash animation. */}
            <span key={event.id} className="price flash" data-testid={`price-${hotel.id}`}>
              {formatMoney(event.price)}
            </span>
            <span className="muted price-meta">
              {direction !== 0 && event.previousPrice ? (
                <span className={direction > 0 ? 'up' : 'down'}>
                  {direction > 0 ? '▲' : '▼'} from {formatMoney(event.previousPrice)}
                </span>
              ) : null}{' '}
              {formatTime(event.occurredAt)}
            </span>
          </>
        ) : (
          <span className="price price-empty" data-testid={`price-${hotel.id}`}>
            waiting…
          </span>
        )}
      </div>
      {showCost && event ? (
        <div className="price-cost" data-testid={`cost-${hotel.id}`}>
          cost {event.supplierCost ? formatMoney(event.supplierCost) : '—'} · margin {event.margin ? formatMoney(event.margin) : '—'}
        </div>
      ) : null}
    </li>
  );
}
