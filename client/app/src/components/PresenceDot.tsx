/**
 * A presence dot: filled green when on, a grey ring when off (the shape differs, not only the
 * colour), dimmed while the state is not known to be current (being fetched, or from before a
 * lost connection). It is decoration: the caller says the state in words beside it.
 */
export function PresenceDot({ on, current }: { on: boolean; current: boolean }) {
  return <span className={`presence-dot ${on ? 'presence-on' : 'presence-off'}${current ? '' : ' presence-unknown'}`} aria-hidden="true" />;
}
