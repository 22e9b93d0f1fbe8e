/**
 * Development tokens from the gateway's GET /dev/token (on with the gateway's development secret, or with DEV_TOKENS=true).
 * A real app would get its tokens from its identity provider instead.
 */

interface DevTokenResponse {
  readonly token: string;
  readonly sub: string;
  readonly roles: readonly string[];
  readonly expiresAt: string;
}

/** Refresh this long before the token expires, so a (re)connect never presents an expired token. */
const REFRESH_MARGIN_MS = 60_000;

export class DevTokenError extends Error {
  override readonly name = 'DevTokenError';
}

async function fetchDevToken(sub: string, roles: readonly string[]): Promise<DevTokenResponse> {
  const query = new URLSearchParams({ sub, roles: roles.join(',') });
  let response: Response;
  try {
    response = await fetch(`/dev/token?${query}`, { cache: 'no-store' });
  } catch {
    throw new DevTokenError('The gateway is not reachable.');
  }
  if (response.status === 404) {
    throw new DevTokenError('Development tokens are off: start the gateway without JWT_SECRET (the development secret) or with DEV_TOKENS=true.');
  }
  if (!response.ok) throw new DevTokenError(`GET /dev/token failed with HTTP ${response.status}.`);
  return (await response.json()) as DevTokenResponse;
}

/**
 * Hands out a token for one development identity: the cached one while it has more than a minute
 * left, otherwise a fresh one. Concurrent callers share one request.
 */
export class DevTokenSource {
  private current: DevTokenResponse | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    readonly sub: string,
    readonly roles: readonly string[],
  ) {}

  /** The function to give createTidingsClient as `getToken`. */
  readonly get = (): Promise<string> => {
    if (this.current && Date.parse(this.current.expiresAt) - Date.now() > REFRESH_MARGIN_MS) {
      return Promise.resolve(this.current.token);
    }
    this.pending ??= fetchDevToken(this.sub, this.roles)
      .then((response) => {
        this.current = response;
        return response.token;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  };
}
