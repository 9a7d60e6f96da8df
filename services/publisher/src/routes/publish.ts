import { randomUUID } from 'node:crypto';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CHANNEL_NAME, findPolicy, type HistoryPolicy, type BridgeWatcher } from '@socketbridge/common';
import { ApiErrors } from '../errors.js';
import type { Pipeline } from '../pipeline.js';
import { PublishBody, Published } from '../schemas.js';
import { errorResponses } from './context.js';

export interface PublishRoutesOptions {
  pipeline: Pipeline;
  watcher: BridgeWatcher;
  /** History for channels no bridge's policy sizes (SOCKETBRIDGE_HISTORY_SIZE / _TTL_SECONDS). */
  defaultHistory: HistoryPolicy;
  /** Whether the seed's fake-data route exists (SOCKETBRIDGE_TEST_MODE). */
  testMode: boolean;
}

/** Publishing over HTTP (admin): `POST /v1/publish`, and in test mode the seed's fake-data route. */
export const publishRoutes: FastifyPluginAsyncTypebox<PublishRoutesOptions> = async (app, { pipeline, watcher, defaultHistory, testMode }) => {
  async function publish(channel: string, data: unknown, id?: string) {
    if (!CHANNEL_NAME.test(channel)) throw new ApiErrors.InvalidChannel(`${channel} is not a channel name`);
    try {
      const history = findPolicy(watcher.policies(), channel)?.policy.history ?? defaultHistory;
      const envelope = await pipeline.publish({ channel, id: id ?? randomUUID(), ts: Date.now(), data, history, idempotent: id !== undefined });
      return { id: envelope.id, offset: envelope.offset, channel };
    } catch (error) {
      throw new ApiErrors.PublishFailed(`could not publish: ${(error as Error).message}`);
    }
  }

  // The seed's fake-data route exists only in test mode, and even then it takes the admin key: it
  // can write into any channel, `client.<id>` included, as `POST /v1/publish` can.
  if (testMode) app.get('/v1/publish-data-over-ch', {
    config: { admin: true },
    schema: {
      summary: 'Publish fake data (test mode only)',
      querystring: Type.Object({
        channel: Type.String({ pattern: '^[A-Za-z0-9_.:@-]{1,200}$', default: 'broadcast' }),
        count: Type.Integer({ minimum: 1, maximum: 1000, default: 1 }),
      }, { additionalProperties: false }),
    },
  }, async (request) => {
    const { channel, count } = request.query;
    const envelopes = [];
    for (let i = 0; i < count; i++) {
      envelopes.push(await publish(channel, { fake: true, n: i, value: Math.round(Math.random() * 10000) / 100 }));
    }
    return { published: envelopes.length, channel, envelopes };
  });

  app.post('/v1/publish', {
    config: { admin: true },
    schema: { summary: 'Publish on a channel over HTTP (admin)', security: [{ apiKey: [] }], body: PublishBody, response: { 202: Published, ...errorResponses } },
  }, async (request, reply) => reply.code(202).send(await publish(request.body.channel, request.body.data, request.body.id)));
};
