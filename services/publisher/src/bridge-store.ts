import type { RedisClient } from '@socketbridge/common';
import { putUnownedBridge, registryKeys, removeUnownedBridge, type Bridge, type BridgeWrite } from '@socketbridge/common';

/**
 * The REST API's way to the bridges in Redis: routes read and write through it, never with Redis
 * commands of their own. Writes go through common's owner-aware scripts (bridge-writes.ts), so a
 * bridge the operator owns is refused in the same atomic step.
 */
export class BridgeStore {
  constructor(private readonly redis: RedisClient) {}

  async get(name: string): Promise<Bridge | undefined> {
    const text = await this.redis.hget(registryKeys.bridges, name);
    return text ? (JSON.parse(text) as Bridge) : undefined;
  }

  put(bridge: Bridge): Promise<BridgeWrite> {
    return putUnownedBridge(this.redis, bridge);
  }

  remove(name: string): Promise<BridgeWrite> {
    return removeUnownedBridge(this.redis, name);
  }
}
