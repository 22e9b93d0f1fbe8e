import type { Redis } from 'ioredis';

export type RedisScript = (...keysThenArgs: Array<string | number>) => Promise<unknown>;

/**
 * A Lua script run by its SHA1 through ioredis' defineCommand (EVALSHA, falling back to EVAL
 * once when Redis answers NOSCRIPT, e.g. after a restart), instead of sending its source with
 * every call: these run on every connect and subscribe.
 */
export function defineScript(redis: Redis, name: string, lua: string, numberOfKeys: number): RedisScript {
  if (!(name in redis)) redis.defineCommand(name, { lua, numberOfKeys });
  const command = (redis as unknown as Record<string, RedisScript>)[name]!;
  return (...keysThenArgs) => command.apply(redis, keysThenArgs);
}
