import ipaddr from 'ipaddr.js';

/**
 * What anonymous callers are counted by: their IPv4 address, or the /64 network of an IPv6 one
 * (one subscriber line is routinely handed a whole /64, so counting single IPv6 addresses would
 * give one client 2^64 quotas). IPv4-mapped IPv6 addresses count as the IPv4 address. Anything
 * unparseable (`unknown`) shares one key: refused together rather than unlimited.
 */
export function addressQuotaKey(address: string | undefined): string {
  if (address === undefined || !ipaddr.isValid(address)) return 'unknown';
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const ipv6 = parsed as ipaddr.IPv6;
  if (ipv6.isIPv4MappedAddress()) return ipv6.toIPv4Address().toString();
  return `${ipv6.parts
    .slice(0, 4)
    .map((part) => part.toString(16))
    .join(':')}::/64`;
}
