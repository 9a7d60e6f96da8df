import type { IncomingMessage, Server } from 'node:http';
import { isIP } from 'node:net';
import { URL } from 'node:url';
import socketClusterServer, { type AGServer, type AGServerSocket } from 'socketcluster-server';
import {
  Counter,
  Gauge,
  INSTANCE_TYPES,
  PROCEDURES,
  SCC_PATH,
  SUPPORTED_MAJORS,
  brokerJoinSchema,
  clusterAuthRefusal,
  createHardenedServer,
  instanceUri,
  listen,
  majorVersion,
  metricDefs,
  normalizeIp,
  opsRequestHandler,
  sendJson,
  workerJoinSchema,
  type BrokersSnapshot,
  type ClusterErrorName,
  type InstanceType,
  type Logger,
  type Registry,
} from '@socketbridge/common';
import type { z } from 'zod';
import { Membership } from './membership.js';
import type { StateConfig } from './config.js';

/** What a state-server socket learns from its handshake query. */
interface MemberSocketInfo {
  instanceType: InstanceType;
  instancePort: string;
  version: string;
}

/** A member refused by name; the names are the wire contract's cluster catalogue (CLUSTER_ERRORS). */
class RefusedError extends Error {
  constructor(
    override readonly name: ClusterErrorName,
    message: string,
  ) {
    super(message);
  }
}

export interface StateServer {
  port: number;
  membership: Membership;
  isReady: () => boolean;
  close: () => Promise<void>;
}

/**
 * Our SCC state server. It keeps upstream scc-state's wire behaviour (so scc-broker-client and
 * scc-broker talk to it unchanged) and improves on it: accepts client majors 9 and 10, validates
 * every handshake and join, sorts broker URIs, keeps snapshot times strictly increasing, and
 * stops retrying a push once a newer snapshot superseded it.
 */
export async function startStateServer(config: StateConfig, logger: Logger, registry: Registry): Promise<StateServer> {
  const membership = new Membership();
  const info = new WeakMap<AGServerSocket, MemberSocketInfo>();
  const startedAt = Date.now();
  let ready = config.SCC_STATE_SERVER_STARTUP_DELAY === 0;
  let closing = false;

  const refusals = new Counter({ ...metricDefs.clusterRefusals, registers: [registry] });
  // Every reason starts at 0: dashboards show a flat line, not "no data", until the first refusal.
  for (const reason of ['auth_key', 'version', 'instance_type', 'instance_port', 'malformed_join', 'startup_delay']) refusals.inc({ reason }, 0);
  const snapshots = new Counter({ ...metricDefs.clusterSnapshots, registers: [registry] });
  new Gauge({
    ...metricDefs.clusterBrokers,
    registers: [registry],
    collect() {
      this.set(membership.uris('scc-broker').length);
    },
  });
  new Gauge({
    ...metricDefs.clusterWorkers,
    registers: [registry],
    collect() {
      this.set(membership.uris('scc-worker').length);
    },
  });

  const httpServer: Server = createHardenedServer();
  const agServer: AGServer = socketClusterServer.attach(httpServer, {
    ackTimeout: config.SCC_STATE_SERVER_ACK_TIMEOUT,
  });

  const handleOps = opsRequestHandler({
    registry,
    opsKey: config.SOCKETBRIDGE_OPS_KEY,
    socketPath: SCC_PATH,
    readiness: () =>
      closing ? { ready: false, reason: 'shutting down' } : ready ? { ready: true } : { ready: false, reason: 'start-up delay' },
    openRoutes: {
      // Upstream's probe path, kept for existing SCC tooling.
      '/health-check': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('OK');
      },
    },
    routes: {
      '/state': (_req, res) => sendJson(res, 200, describe()),
    },
  });
  httpServer.on('request', (req, res) => void handleOps(req, res));

  function describe() {
    const view = (type: InstanceType) =>
      membership.list(type).map((m) => ({ instanceId: m.instanceId, uri: m.uri, joinedAt: new Date(m.joinedAt).toISOString() }));
    return {
      ready,
      startedAt: new Date(startedAt).toISOString(),
      brokers: view('scc-broker'),
      workers: view('scc-worker'),
      sccBrokerURIs: membership.uris('scc-broker'),
      sccWorkerURIs: membership.uris('scc-worker'),
    };
  }

  function refuse(reason: string, error: RefusedError): RefusedError {
    refusals.inc({ reason });
    logger.warn({ reason, err: error.message }, 'refused a cluster member');
    return error;
  }

  function checkHandshakeQuery(rawUrl: string | undefined): MemberSocketInfo {
    const query = new URL(rawUrl ?? '/', 'http://state.invalid').searchParams;
    const instanceType = query.get('instanceType') ?? '';
    if (!(INSTANCE_TYPES as readonly string[]).includes(instanceType)) {
      throw refuse(
        'instance_type',
        new RefusedError('InvalidInstanceTypeError', `instanceType must be one of ${INSTANCE_TYPES.join(', ')}; got ${JSON.stringify(instanceType)}.`),
      );
    }
    const version = query.get('version') ?? '';
    const major = majorVersion(version);
    if (!(SUPPORTED_MAJORS as readonly number[]).includes(major)) {
      throw refuse(
        'version',
        new RefusedError(
          'CompatibilityError',
          `${instanceType}@${version} is not supported: this state server accepts majors ${SUPPORTED_MAJORS.join(' and ')}.`,
        ),
      );
    }
    const instancePort = query.get('instancePort') ?? '';
    const portNumber = Number(instancePort);
    // Workers without a port are legal upstream (the worker URI is then informational only); brokers must be reachable.
    if (instanceType === 'scc-broker' && !(Number.isInteger(portNumber) && portNumber > 0 && portNumber < 65536)) {
      throw refuse('instance_port', new RefusedError('InvalidInstancePortError', `a broker must announce instancePort 1-65535; got ${JSON.stringify(instancePort)}.`));
    }
    return { instanceType: instanceType as InstanceType, instancePort, version };
  }

  agServer.setMiddleware(agServer.MIDDLEWARE_HANDSHAKE, async (stream) => {
    for await (const action of stream) {
      // The key at the door, on the HTTP upgrade: a caller without it gets 401 (the body names
      // BadClusterAuthError) and never a socket, so it cannot reach a single procedure.
      if (action.type === action.HANDSHAKE_WS) {
        // socketcluster-server sets `request` on this action too; its types leave it out.
        const { request } = action as unknown as { request: IncomingMessage };
        const refusal = clusterAuthRefusal(request, config.SCC_AUTH_KEY);
        if (refusal) {
          refusals.inc({ reason: 'auth_key' });
          logger.warn({ reason: 'auth_key' }, 'refused a cluster member');
          action.block(new Error(`${refusal.name}: ${refusal.message}`));
          continue;
        }
      }
      // The rest is checked at the SocketCluster handshake rather than the upgrade, so a member
      // with the key but a wrong version or type gets the error's name and message.
      if (action.type === action.HANDSHAKE_SC && action.socket) {
        try {
          info.set(action.socket, checkHandshakeQuery(action.socket.request.url));
        } catch (error) {
          action.block(error as Error);
          continue;
        }
      }
      action.allow();
    }
  });

  function remoteIp(socket: AGServerSocket, announced: string | null | undefined): string {
    if (announced) return announced;
    if (config.FORWARDED_FOR_HEADER) {
      const header = socket.request.headers[config.FORWARDED_FOR_HEADER.toLowerCase()];
      const first = (Array.isArray(header) ? header[0] : header)?.split(',')[0]?.trim();
      if (first && isIP(first)) return normalizeIp(first);
    }
    return normalizeIp(socket.remoteAddress ?? '127.0.0.1');
  }

  // Only the latest scale request counts (as upstream): a burst of joins becomes one push.
  const timers: Partial<Record<InstanceType, NodeJS.Timeout>> = {};
  const sentTime = new WeakMap<AGServerSocket, Record<string, number>>();
  // The broker snapshot the members were last sent: a member joining while a newer one waits in
  // its timer gets this one, so it maps channels as the others do until the push moves them all
  // (one that got the newer set at once would publish where the others do not listen yet).
  let lastBrokers: BrokersSnapshot | undefined = undefined;

  function schedulePush(type: InstanceType, procedure: string, delay: number, except?: string): void {
    clearTimeout(timers[type]);
    timers[type] = setTimeout(() => {
      delete timers[type];
      const snapshot = type === 'scc-broker' ? (lastBrokers = membership.brokersSnapshot()) : membership.workersSnapshot();
      snapshots.inc({ kind: procedure });
      logger.info({ procedure, snapshot }, 'pushing cluster snapshot to workers');
      for (const worker of membership.list('scc-worker')) {
        if (worker.socketId === except) continue;
        const socket = agServer.clients[worker.socketId];
        if (socket) void push(socket, procedure, { ...snapshot, sccSourceWorkerURI: worker.uri }, type);
      }
    }, delay);
  }

  async function push(socket: AGServerSocket, procedure: string, data: { time: number; sccSourceWorkerURI: string }, kind: InstanceType): Promise<void> {
    const sent = sentTime.get(socket) ?? {};
    sent[kind] = data.time;
    sentTime.set(socket, sent);
    try {
      await socket.invoke(procedure, data, {});
    } catch (error) {
      const superseded = (sentTime.get(socket)?.[kind] ?? 0) > data.time;
      if (socket.state !== socket.OPEN || superseded || closing) return;
      logger.warn({ procedure, socketId: socket.id, err: (error as Error).message }, 'push failed: retrying');
      setTimeout(() => void push(socket, procedure, data, kind), config.SCC_STATE_SERVER_RETRY_DELAY);
    }
  }

  function parseJoin<T extends z.ZodTypeAny>(schema: T, data: unknown, procedure: string): z.infer<T> {
    const parsed = schema.safeParse(data ?? {});
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join('.') || 'data'}: ${i.message}`).join('; ');
      throw refuse('malformed_join', new RefusedError('InvalidJoinError', `${procedure} payload is invalid: ${detail}`));
    }
    return parsed.data;
  }

  function requireType(socket: AGServerSocket, expected: InstanceType, procedure: string): MemberSocketInfo {
    const socketInfo = info.get(socket);
    if (socketInfo?.instanceType !== expected) {
      throw refuse(
        'instance_type',
        new RefusedError('InvalidInstanceTypeError', `${procedure} is for ${expected} members; this socket joined as ${socketInfo?.instanceType ?? 'nothing'}.`),
      );
    }
    return socketInfo;
  }

  function leave(socket: AGServerSocket): void {
    const member = membership.leave(socket.id);
    if (!member) return;
    logger.info({ type: member.type, instanceId: member.instanceId, uri: member.uri }, 'member left');
    if (member.type === 'scc-broker') {
      schedulePush('scc-broker', PROCEDURES.brokerLeave, config.SCC_STATE_SERVER_SCALE_BACK_DELAY);
    } else {
      schedulePush('scc-worker', PROCEDURES.workerLeave, config.SCC_STATE_SERVER_SCALE_BACK_DELAY);
    }
  }

  function handleProcedure(socket: AGServerSocket, procedure: string, handler: (data: unknown) => unknown): void {
    void (async () => {
      for await (const request of socket.procedure(procedure)) {
        try {
          request.end(handler(request.data));
        } catch (error) {
          request.error(error instanceof Error ? error : new Error(String(error)));
        }
      }
    })();
  }

  void (async () => {
    for await (const { socket } of agServer.listener('connection')) {
      handleProcedure(socket, PROCEDURES.brokerJoin, (data) => {
        const socketInfo = requireType(socket, 'scc-broker', PROCEDURES.brokerJoin);
        const join = parseJoin(brokerJoinSchema, data, PROCEDURES.brokerJoin);
        const ip = remoteIp(socket, join.instanceIp);
        const uri = instanceUri(ip, socketInfo.instancePort, join.instanceSecure === true);
        membership.join({ socketId: socket.id, type: 'scc-broker', instanceId: join.instanceId, uri, joinedAt: Date.now() });
        logger.info({ instanceId: join.instanceId, uri, version: socketInfo.version }, 'broker joined');
        schedulePush('scc-broker', PROCEDURES.brokerJoin, config.SCC_STATE_SERVER_SCALE_OUT_DELAY);
        return undefined;
      });
      handleProcedure(socket, PROCEDURES.workerJoin, (data) => {
        const socketInfo = requireType(socket, 'scc-worker', PROCEDURES.workerJoin);
        const join = parseJoin(workerJoinSchema, data, PROCEDURES.workerJoin);
        if (!ready) {
          refusals.inc({ reason: 'startup_delay' });
          throw new RefusedError('StartupDelayError', 'The state server is waiting for initial broker connections; retry shortly.');
        }
        const ip = remoteIp(socket, join.instanceIp);
        const uri = instanceUri(ip, socketInfo.instancePort);
        membership.join({ socketId: socket.id, type: 'scc-worker', instanceId: join.instanceId, uri, joinedAt: Date.now() });
        logger.info({ instanceId: join.instanceId, uri, version: socketInfo.version }, 'worker joined');
        schedulePush('scc-worker', PROCEDURES.workerJoin, config.SCC_STATE_SERVER_SCALE_OUT_DELAY, socket.id);
        const brokers = timers['scc-broker'] && lastBrokers ? lastBrokers : (lastBrokers = membership.brokersSnapshot());
        return { ...brokers, sccWorkerURIs: membership.uris('scc-worker'), sccSourceWorkerURI: uri };
      });
      for (const procedure of [PROCEDURES.brokerLeave, PROCEDURES.workerLeave]) {
        handleProcedure(socket, procedure, () => {
          leave(socket);
          return undefined;
        });
      }
      void (async () => {
        for await (const _event of socket.listener('disconnect')) leave(socket);
      })();
    }
  })();

  void (async () => {
    for await (const { error } of agServer.listener('error')) logger.error({ err: error }, 'socketcluster server error');
  })();
  void (async () => {
    for await (const { warning } of agServer.listener('warning')) logger.debug({ warning: String(warning) }, 'socketcluster warning');
  })();

  const port = await listen(httpServer, config.SCC_STATE_SERVER_PORT, config.SCC_STATE_SERVER_HOST_BIND);
  const startupTimer = ready
    ? undefined
    : setTimeout(() => {
        ready = true;
        logger.info('start-up delay over: workers may join');
      }, config.SCC_STATE_SERVER_STARTUP_DELAY);

  return {
    port,
    membership,
    isReady: () => ready,
    async close() {
      closing = true;
      clearTimeout(startupTimer);
      for (const timer of Object.values(timers)) clearTimeout(timer);
      await agServer.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
