import type { RedisClient } from './redis.js';
import { registryKeys, type Bridge } from './bridges.js';

/**
 * REST writes to the registry (`PUT` / `DELETE /v1/bridges/<name>`), refused in the same atomic
 * step when the operator (or `npm run bridge`) owns the name: otherwise a REST call would overwrite
 * the operator's bridge until its next resync wrote it back. KEYS: bridges, owners. ARGV: name,
 * changes channel, then the bridge's JSON (absent: remove). Returns {changed, owner that refused}.
 */
const WRITE = `
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner then return {0, owner} end
if ARGV[3] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
elseif redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return {0, false}
end
redis.call('PUBLISH', ARGV[2], ARGV[1])
return {1, false}`;

export type BridgeWrite = { ok: true; changed: boolean } | { ok: false; owner: string };

async function write(redis: RedisClient, name: string, json?: string): Promise<BridgeWrite> {
  const args = [name, registryKeys.changes, ...(json === undefined ? [] : [json])];
  const [changed, owner] = (await redis.eval(WRITE, 2, registryKeys.bridges, registryKeys.owners, ...args)) as [number, string | null];
  return owner ? { ok: false, owner } : { ok: true, changed: changed === 1 };
}

/** Creates or replaces an unowned bridge; refused with its owner when a resource owns the name. */
export function putUnownedBridge(redis: RedisClient, bridge: Bridge): Promise<BridgeWrite> {
  return write(redis, bridge.name, JSON.stringify(bridge));
}

/** Removes an unowned bridge (`changed` false: there was none); refused with its owner when owned. */
export function removeUnownedBridge(redis: RedisClient, name: string): Promise<BridgeWrite> {
  return write(redis, name);
}
