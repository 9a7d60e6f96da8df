import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RedisClient } from '@socketbridge/common';
import { bridgeProblems, withTimeout, type Bridge, type BridgeWatcher } from '@socketbridge/common';
import { BridgeStore } from '../bridge-store.js';
import type { RabbitConsumer } from '../consumer.js';
import { ApiErrors } from '../errors.js';
import { BridgeBody, BridgeName } from '../schemas.js';
import { needsRegistry } from './context.js';

export interface BridgeRoutesOptions {
  redis: RedisClient;
  watcher: BridgeWatcher;
  consumer: RabbitConsumer;
}

/** Bridges and channel policies (admin), and the seed's `create-rabbit-ch`, which starts consuming them. */
export const bridgeRoutes: FastifyPluginAsyncTypebox<BridgeRoutesOptions> = async (app, { redis, watcher, consumer }) => {
  const bridges = new BridgeStore(redis);
  const registry = needsRegistry(redis);

  app.get('/v1/create-rabbit-ch', { schema: { summary: 'Start consuming RabbitMQ (idempotent)' } }, async () => {
    // Answers once the first connection attempt is over (bounded: RabbitMQ may not answer at all).
    await withTimeout(consumer.start(), 5000, 'RabbitMQ').catch(() => undefined);
    return { status: 'consuming', ...consumer.status() };
  });

  app.get('/v1/channels', {
    config: { admin: true },
    schema: { summary: 'Channel policies in force (admin)', security: [{ apiKey: [] }] },
  }, async () => ({ policies: watcher.policies() }));

  app.get('/v1/bridges', {
    config: { admin: true },
    preHandler: registry,
    schema: { summary: 'Bridges in the registry (admin)', security: [{ apiKey: [] }] },
  }, async () => {
    await watcher.reload();
    return { bridges: watcher.bridges(), consumer: consumer.status() };
  });

  app.get('/v1/bridges/:name', {
    config: { admin: true },
    preHandler: registry,
    schema: { summary: 'One bridge (admin)', security: [{ apiKey: [] }], params: BridgeName },
  }, async (request) => {
    const bridge = await bridges.get(request.params.name);
    if (!bridge) throw new ApiErrors.BridgeNotFound(`no bridge ${request.params.name}`);
    return bridge;
  });

  app.put('/v1/bridges/:name', {
    config: { admin: true },
    preHandler: registry,
    schema: { summary: 'Create or replace a bridge (admin; the operator uses this registry too)', security: [{ apiKey: [] }], params: BridgeName, body: BridgeBody },
  }, async (request, reply) => {
    const bridge: Bridge = { name: request.params.name, ...(request.body as Omit<Bridge, 'name'>) };
    const problems = bridgeProblems(bridge);
    if (problems.length) throw new ApiErrors.InvalidBridge(problems.join('; '));
    const written = await bridges.put(bridge);
    if (!written.ok) throw ownedBridge(bridge.name, written.owner);
    await watcher.reload();
    return reply.code(200).send(bridge);
  });

  app.delete('/v1/bridges/:name', {
    config: { admin: true },
    preHandler: registry,
    schema: { summary: 'Remove a bridge (admin; its queues stay)', security: [{ apiKey: [] }], params: BridgeName },
  }, async (request, reply) => {
    const removed = await bridges.remove(request.params.name);
    if (!removed.ok) throw ownedBridge(request.params.name, removed.owner);
    if (!removed.changed) throw new ApiErrors.BridgeNotFound(`no bridge ${request.params.name}`);
    await watcher.reload();
    return reply.code(204).send();
  });
};

/** A bridge a SocketBridge resource (or file) owns changes only there: its owner's next resync would undo a REST write. */
function ownedBridge(name: string, owner: string): Error {
  return new ApiErrors.BridgeOwned(`bridge ${name} is owned by ${owner} (the operator's SocketBridge resource or npm run bridge): change it there`);
}
