import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Counter, MAX_PRESENCE_LIMIT, findPolicy, metricDefs, type BridgeWatcher, type RedisClient, type Registry } from '@socketbridge/common';
import type { ClusterAnswer, ClusterQueries } from '../cluster-queries.js';
import { ApiErrors } from '../errors.js';
import { ChannelParams } from '../schemas.js';
import { errorResponses, needsRegistry } from './context.js';

export interface ChannelInfoRoutesOptions {
  queries: ClusterQueries;
  redis: RedisClient;
  watcher: BridgeWatcher;
  metrics: Registry;
}

const answerFields = {
  channel: Type.String(),
  complete: Type.Boolean({ description: 'Every live worker answered in time; false: `missing` lists those that did not (e.g. one just killed, until its liveness entry expires).' }),
  missing: Type.Array(Type.String(), { description: 'Instance ids of live workers that did not answer in time.' }),
};

/**
 * Channel info and presence (admin): the server API asks every worker at once (cluster-queries.ts)
 * and adds up their answers. A channel's presence is listed only when its policy says `presence: true`.
 */
export const channelInfoRoutes: FastifyPluginAsyncTypebox<ChannelInfoRoutesOptions> = async (app, { queries, redis, watcher, metrics }) => {
  const asked = new Counter({ ...metricDefs.clusterQueries, registers: [metrics] });
  for (const outcome of ['complete', 'partial']) asked.inc({ outcome }, 0);
  const presenceOf = (channel: string) => findPolicy(watcher.policies(), channel)?.policy.presence === true;

  async function ask(channel: string, clients: boolean, limit: number): Promise<ClusterAnswer> {
    if (!queries.ready()) throw new ApiErrors.ClusterUnavailable('the cluster cannot answer yet: no broker shard confirmed the reply channel');
    let answer: ClusterAnswer;
    try {
      answer = await queries.ask(channel, clients, limit);
    } catch (error) {
      throw new ApiErrors.ClusterUnavailable(`the cluster did not take the query: ${(error as Error).message}`);
    }
    asked.inc({ outcome: answer.missing.length ? 'partial' : 'complete' });
    return answer;
  }

  app.get('/v1/channels/:channel', {
    config: { admin: true },
    preHandler: needsRegistry(redis),
    schema: {
      summary: 'Subscribers of a channel across the cluster (admin)',
      description:
        'Asks every live worker how many sockets are subscribed to the channel, and adds them up. Sockets, not clients: one client with two tabs counts twice.',
      security: [{ apiKey: [] }],
      params: ChannelParams,
      response: {
        200: Type.Object({
          ...answerFields,
          subscribers: Type.Integer({ description: 'Sockets subscribed, over every worker that answered.' }),
          workers: Type.Array(Type.Object({ instanceId: Type.String(), subscribers: Type.Integer() })),
          presence: Type.Boolean({ description: "Whether the channel's policy sets presence (GET …/presence lists its clients)." }),
        }),
        ...errorResponses,
      },
    },
  }, async (request) => {
    const { channel } = request.params;
    const { replies, missing } = await ask(channel, false, 1);
    return {
      channel,
      subscribers: replies.reduce((sum, reply) => sum + reply.subscribers, 0),
      workers: replies.map(({ instanceId, subscribers }) => ({ instanceId, subscribers })).sort((a, b) => a.instanceId.localeCompare(b.instanceId)),
      presence: presenceOf(channel),
      complete: missing.length === 0,
      missing,
    };
  });

  app.get('/v1/channels/:channel/presence', {
    config: { admin: true },
    preHandler: needsRegistry(redis),
    schema: {
      summary: 'Who is subscribed to a presence channel (admin)',
      description:
        'The distinct client ids (token `sub`) subscribed to the channel on any live worker, at most `limit`; `truncated` when there are more. ' +
        'Anonymous sockets are not listed. 404 `NotFound` unless the channel\'s policy sets `presence: true`.',
      security: [{ apiKey: [] }],
      params: ChannelParams,
      querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: MAX_PRESENCE_LIMIT, default: 100 }) }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          ...answerFields,
          clients: Type.Array(Type.String()),
          truncated: Type.Boolean({ description: 'More clients are subscribed than `limit`: `clients` is cut off.' }),
        }),
        ...errorResponses,
      },
    },
  }, async (request) => {
    const { channel } = request.params;
    if (!presenceOf(channel)) {
      throw new ApiErrors.PresenceOff(`presence is off for ${channel}: set presence: true on the channel policy that covers it`);
    }
    const limit = request.query.limit;
    const { replies, missing } = await ask(channel, true, limit);
    const clients = new Set<string>();
    let truncated = false;
    for (const reply of replies) {
      if (reply.truncated) truncated = true;
      for (const clientId of reply.clients ?? []) {
        if (clients.size === limit && !clients.has(clientId)) truncated = true;
        else clients.add(clientId);
      }
    }
    return { channel, clients: [...clients].sort(), truncated, complete: missing.length === 0, missing };
  });
};
