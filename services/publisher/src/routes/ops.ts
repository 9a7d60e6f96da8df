import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { RedisClient } from '@socketbridge/common';
import { bearerKey, keyMatches, type ClusterLink, type Registry } from '@socketbridge/common';
import { ApiErrors } from '../errors.js';
import type { RabbitConsumer } from '../consumer.js';

export interface OpsRoutesOptions {
  opsKey: string;
  version: string;
  redis: RedisClient;
  consumer: RabbitConsumer;
  link: ClusterLink;
  metrics: Registry;
}

/** `/`, `/healthz`, `/readyz`, and `/cluster` and `/metrics` behind the ops key. */
export const opsRoutes: FastifyPluginAsyncTypebox<OpsRoutesOptions> = async (app, { opsKey, version, redis, consumer, link, metrics }) => {
  const readiness = () => {
    const reasons: string[] = [];
    if (redis.status !== 'ready') reasons.push('redis unavailable');
    if (consumer.isWanted && !consumer.isConnected) reasons.push('rabbitmq not connected');
    // Its first publishes go to shards every member listens on (cluster-link.ts, linkReadiness).
    const cluster = link.readiness();
    if (!cluster.ready) reasons.push(cluster.reason);
    return reasons;
  };

  app.get('/', { schema: { summary: 'Is the publisher up' } }, async () => ({ service: 'socketbridge-publisher', version, status: 'up' }));
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const reasons = readiness();
    return reply.code(reasons.length ? 503 : 200).send(reasons.length ? { status: 'not ready', reasons } : { status: 'ready' });
  });

  // Ops endpoints want the ops key (Prometheus holds it; it opens nothing else), checked before anything runs.
  const needsOpsKey = async (request: FastifyRequest) => {
    if (!keyMatches(bearerKey(request.raw), opsKey)) {
      throw new ApiErrors.OpsKeyRequired(`${request.url.split('?')[0]} needs Authorization: Bearer <SOCKETBRIDGE_OPS_KEY>`);
    }
  };
  app.get('/cluster', { onRequest: needsOpsKey, schema: { hide: true } }, async () => ({
    instanceId: link.instanceId,
    brokerURIs: link.brokerURIs(),
    workerURIs: link.workerURIs(),
  }));
  app.get('/metrics', { onRequest: needsOpsKey, schema: { hide: true } }, async (_request, reply) => {
    return reply.type(metrics.contentType).send(await metrics.metrics());
  });
};
