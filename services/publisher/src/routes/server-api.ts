import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CONTROL_CHANNEL, MAX_CONTROL_CLIENT_ID, type ClusterLink, type ControlMessage } from '@socketbridge/common';
import { ApiErrors } from '../errors.js';
import { errorResponses } from './context.js';

export interface ServerApiRoutesOptions {
  link: ClusterLink;
}

/**
 * The server API (admin): orders every worker carries out at once. Each is a control message the
 * publisher publishes on the cluster's reserved control channel (common/src/control.ts), which
 * every worker listens on; the answer comes once the channel's broker shard took it.
 */
export const serverApiRoutes: FastifyPluginAsyncTypebox<ServerApiRoutesOptions> = async (app, { link }) => {
  async function order(message: ControlMessage): Promise<void> {
    try {
      await link.publish(CONTROL_CHANNEL, [message]);
    } catch (error) {
      throw new ApiErrors.PublishFailed(`the cluster did not take the order: ${(error as Error).message}`);
    }
  }

  app.post('/v1/clients/:clientId/disconnect', {
    config: { admin: true },
    schema: {
      summary: 'Disconnect every socket of a client, on every worker (admin)',
      description:
        'Closes each socket whose token names the client (`sub`) with close code 4102 (`reconnect: true`: socketcluster-client reconnects) ' +
        'or 4501 (the default: it stays closed). The order reaches every worker through the cluster within a second. A client with no open ' +
        'socket is not an error: the client may come from an identity provider this publisher has no record of.',
      security: [{ apiKey: [] }],
      params: Type.Object({ clientId: Type.String({ minLength: 1, maxLength: MAX_CONTROL_CLIENT_ID }) }),
      body: Type.Object({ reconnect: Type.Optional(Type.Boolean({ default: false })) }, { additionalProperties: false }),
      response: { 202: Type.Object({ clientId: Type.String(), reconnect: Type.Boolean() }), ...errorResponses },
    },
  }, async (request, reply) => {
    const { clientId } = request.params;
    const reconnect = request.body.reconnect === true;
    await order({ type: 'disconnect', clientId, reconnect });
    return reply.code(202).send({ clientId, reconnect });
  });
};
