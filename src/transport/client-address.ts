import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';

/** The peer address of a request: the rate-limit key of anonymous callers, and what logs show. */
export type ClientAddressOf = (request: IncomingMessage) => string;

/**
 * Behind a proxy every request comes from the proxy. With TRUST_PROXY set, the address is read
 * from X-Forwarded-For, trusting only the listed proxies (addresses, subnets, `loopback`,
 * `linklocal`, `uniquelocal`) or the given number of hops, never what an arbitrary client claims.
 */
export function createClientAddressOf(trust: readonly string[] | number): ClientAddressOf {
  // A hop count trusts that many proxies in front of us, whatever their addresses.
  const trusted = typeof trust === 'number' ? (_address: string, hop: number) => hop < trust : proxyaddr.compile([...trust]);
  return (request) => {
    try {
      return proxyaddr(request, trusted);
    } catch {
      return request.socket.remoteAddress ?? 'unknown';
    }
  };
}
