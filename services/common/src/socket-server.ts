import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import scErrors from 'sc-errors';
import { WebSocketServer, type WebSocket } from 'ws';
import { corkForTurn } from './fanout.js';
import type { Logger } from './logger.js';
import { verifyHandshakeToken, type HandshakeAuth } from './tokens.js';
import { CLOSE_CODES } from './wire.js';

/** An onError for a service: a peer's bad frame or dropped connection is its own business (debug); a server error is ours. */
export function logSocketErrors(logger: Logger, peer: string): SocketServerOptions['onError'] {
  return (error, socket) => (socket ? logger.debug({ err: error, socketId: socket.id }, `${peer} socket error`) : logger.error({ err: error }, 'socket server error'));
}

/**
 * The server side of the SocketCluster protocol (v2), what socketcluster-client speaks: the
 * handshake with its JWT, ping/pong, #subscribe/#unsubscribe, #publish, #authenticate,
 * #removeAuthToken, RPCs with cid/rid, batches as JSON arrays, SocketCluster's close codes.
 *
 * Why not socketcluster-server: it gives every socket five consumable streams, three demuxes,
 * their async loops and three timers, 13.5 KiB of heap per idle connection against ws's 3 KiB,
 * and the worker holds the connections (memory, not CPU, sizes that tier). Here a socket is the
 * ws WebSocket plus one small object, and pings and timeouts run from one sweep for all sockets.
 */

export type SocketState = 'connecting' | 'open' | 'closed';

/** Where a service's policy plugs in; each gate throws (an error with a name and message) to say no. */
export interface SocketGates {
  /**
   * Looks at the upgrade request before the WebSocket opens (the broker checks the cluster's
   * authKey in its query). An error returned here refuses the upgrade itself: HTTP 401 with the
   * error's name in the `x-socketbridge-error` header and `<name>: <message>` as the body, so a
   * refused peer costs no socket, no timer and no handshake.
   */
  connection?(request: IncomingMessage): Error | undefined;
  handshake(socket: ClientSocket, auth: HandshakeAuth): void | Promise<void>;
  subscribe(socket: ClientSocket, channel: string): void | Promise<void>;
  publish(socket: ClientSocket, channel: string, data: unknown): void | Promise<void>;
  /** Checks a verified token sent with `#authenticate` on an open socket (a refresh); throws to refuse it. */
  authenticate?(socket: ClientSocket, auth: HandshakeAuth): void | Promise<void>;
  /** Whether the socket, with its auth as it is now, may stay on a channel; asked after its auth changed. */
  holds?(socket: ClientSocket, channel: string): boolean;
  procedures: Record<string, (socket: ClientSocket, data: unknown) => unknown>;
}

/** The part of ag-simple-broker (the broker engine scc-broker-client attaches to) a socket needs. */
export interface SocketBroker {
  subscribeSocket(socket: ClientSocket, channel: string): Promise<void>;
  unsubscribeSocket(socket: ClientSocket, channel: string): Promise<void>;
  invokePublish(channel: string, data: unknown): Promise<void>;
}

export interface SocketServerOptions {
  httpServer: Server;
  path: string;
  authKey: string;
  /** Verifies client tokens (handshake, #authenticate); default: HS256 with authKey only. */
  verifyToken?: (token: unknown) => Promise<HandshakeAuth>;
  maxPayload: number;
  /** Most channels one socket may be subscribed to at once (undefined: no limit, for cluster members). */
  maxChannelsPerSocket?: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  handshakeTimeoutMs: number;
  broker: SocketBroker;
  gates: SocketGates;
  onError(error: unknown, socket?: ClientSocket): void;
  /** A socket's token was set: at the handshake's success and at each accepted `#authenticate`. */
  onAuthenticated?(socket: ClientSocket): void;
  /** A socket that had completed its handshake closed. */
  onClosed?(socket: ClientSocket): void;
  /** A `#authenticate` was refused (the token did not verify, or the authenticate gate said no), with the error answered. */
  onAuthRefused?(socket: ClientSocket, error: unknown): void;
}

interface Packet {
  event?: unknown;
  data?: unknown;
  cid?: unknown;
}

/** Most inbound requests a socket may have waiting; a client that floods past it is closed (CLOSE_CODES.requestFlood). */
const MAX_PENDING = 1000;
/** The heartbeat sweep visits an eighth of the sockets per tick. */
const SLICES = 8;

export class ClientSocket {
  state: SocketState = 'connecting';
  /** The verified JWT claims, or null: unauthenticated (or the token expired). */
  authToken: Record<string, unknown> | null = null;
  readonly channels = new Set<string>();
  /** Pings sent since the client last said anything. */
  silentPings = 0;
  /** Inbound requests waiting their turn: a socket's requests are handled in the order they came. */
  pending = 0;
  tail: Promise<void> | undefined = undefined;

  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    readonly connectedAt: number,
    /** Which tick of the heartbeat sweep pings this socket. */
    readonly slice: number,
  ) {}

  subscriptions(): string[] {
    return [...this.channels];
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Corked for the turn (fanout.ts): a batch of requests answered in one turn leaves in one write. */
  send(object: unknown): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    corkForTurn(this.ws);
    this.ws.send(JSON.stringify(object));
  }

  respond(cid: number, data: unknown): void {
    this.send(data === undefined ? { rid: cid } : { rid: cid, data });
  }

  respondError(cid: number, error: unknown): void {
    this.send({ rid: cid, error: scErrors.dehydrateError(error) });
  }

  /** Closes with a SocketCluster close code; the reason defaults to SocketCluster's text for it. */
  disconnect(code = 1000, reason?: string): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      this.ws.close(code, reason ?? scErrors.socketProtocolErrorStatuses[code as keyof typeof scErrors.socketProtocolErrorStatuses]);
    }
  }

  terminate(): void {
    this.ws.terminate();
  }
}

export class SocketServer {
  /** Sockets that completed the handshake. */
  readonly clients = new Map<string, ClientSocket>();
  private readonly all = new Set<ClientSocket>();
  private readonly wss: WebSocketServer;
  private readonly sweep: NodeJS.Timeout;
  private readonly idPrefix = randomBytes(6).toString('base64url');
  private nextId = 0;
  private readonly key: Uint8Array;
  private readonly verifyToken: (token: unknown) => Promise<HandshakeAuth>;
  /** A Map, not the gates' object: a client's `constructor` or `__proto__` must not find a procedure. */
  private readonly procedures: Map<string, (socket: ClientSocket, data: unknown) => unknown>;

  constructor(private readonly options: SocketServerOptions) {
    this.key = new TextEncoder().encode(options.authKey);
    this.verifyToken = options.verifyToken ?? ((token) => verifyHandshakeToken(token, this.key));
    this.procedures = new Map(Object.entries(options.gates.procedures));
    const gate = options.gates.connection;
    this.wss = new WebSocketServer({
      server: options.httpServer,
      path: options.path,
      maxPayload: options.maxPayload,
      clientTracking: false,
      perMessageDeflate: false,
      ...(gate && {
        verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void) => {
          const refusal = gate(info.req);
          if (refusal) done(false, 401, `${refusal.name}: ${refusal.message}`, { 'x-socketbridge-error': refusal.name });
          else done(true);
        },
      }),
    });
    this.wss.on('error', (error) => options.onError(error));
    this.wss.on('connection', (ws) => this.accept(ws));
    // One timer for every socket: a ping to each, and the close of those that stay silent. Spread
    // over the interval (a slice of sockets per tick) so 50,000 pings do not leave in one burst.
    let tick = 0;
    this.sweep = setInterval(() => this.pingSlice(tick++ % SLICES), options.pingIntervalMs / SLICES);
    this.sweep.unref();
  }

  get clientsCount(): number {
    return this.clients.size;
  }

  /** Stops accepting sockets and drops those still open (drain first for a gentle stop). */
  async close(): Promise<void> {
    clearInterval(this.sweep);
    for (const socket of this.all) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private accept(ws: WebSocket): void {
    const n = this.nextId++;
    const socket = new ClientSocket(`${this.idPrefix}-${n.toString(36)}`, ws, Date.now(), n % SLICES);
    this.all.add(socket);
    ws.on('message', (raw) => this.receive(socket, String(raw)));
    ws.on('close', () => this.closed(socket));
    // An 'error' is followed by 'close': report it and let 'close' clean up.
    ws.on('error', (error) => this.options.onError(error, socket));
  }

  private closed(socket: ClientSocket): void {
    socket.state = 'closed';
    this.all.delete(socket);
    if (this.clients.delete(socket.id)) this.options.onClosed?.(socket);
    for (const channel of socket.channels) void this.options.broker.unsubscribeSocket(socket, channel);
    socket.channels.clear();
  }

  private pingSlice(slice: number): void {
    const now = Date.now();
    const maxSilent = Math.ceil(this.options.pingTimeoutMs / this.options.pingIntervalMs);
    for (const socket of this.all) {
      if (socket.slice !== slice) continue;
      if (socket.state === 'connecting') {
        if (now - socket.connectedAt > this.options.handshakeTimeoutMs) socket.disconnect(CLOSE_CODES.handshakeTimeout);
        continue;
      }
      if (socket.silentPings >= maxSilent) {
        socket.disconnect(CLOSE_CODES.pingTimeout);
        continue;
      }
      socket.silentPings++;
      if (socket.ws.readyState === socket.ws.OPEN) socket.ws.send('');
    }
  }

  private receive(socket: ClientSocket, message: string): void {
    socket.silentPings = 0;
    if (message === '') {
      this.expireToken(socket); // a pong
      return;
    }
    let packet: unknown;
    try {
      packet = JSON.parse(message);
    } catch {
      this.options.onError(new scErrors.InvalidMessageError('a frame that is not JSON'), socket);
      return;
    }
    for (const one of Array.isArray(packet) ? packet : [packet]) {
      if (!one || typeof one !== 'object' || typeof (one as Packet).event !== 'string') continue; // responses, raw: nothing to do
      if (++socket.pending > MAX_PENDING) {
        socket.disconnect(CLOSE_CODES.requestFlood, 'too many requests waiting');
        return;
      }
      const done = () => void socket.pending--;
      const { event, cid } = one as Packet;
      if (socket.state === 'open' && typeof cid === 'number' && !(event as string).startsWith('#')) {
        // Procedures answer out of order: a slow one does not hold up the socket's next request.
        void this.call(socket, event as string, cid, (one as Packet).data).finally(done);
        continue;
      }
      const run = () => this.handle(socket, one as Packet).catch((error: unknown) => this.options.onError(error, socket));
      const tail = (socket.tail = socket.tail ? socket.tail.then(run) : run());
      void tail.then(() => {
        done();
        if (socket.tail === tail) socket.tail = undefined;
      });
    }
  }

  private async call(socket: ClientSocket, event: string, cid: number, data: unknown): Promise<void> {
    this.expireToken(socket);
    const procedure = this.procedures.get(event);
    try {
      if (!procedure) throw new scErrors.InvalidActionError(`there is no procedure named ${event.slice(0, 100)}`);
      socket.respond(cid, await procedure(socket, data));
    } catch (error) {
      socket.respondError(cid, error);
    }
  }

  private async handle(socket: ClientSocket, packet: Packet): Promise<void> {
    if (socket.state === 'closed') return;
    const event = packet.event as string;
    const cid = typeof packet.cid === 'number' ? packet.cid : undefined;
    if (event === '#handshake') return this.handshake(socket, cid, packet.data);
    if (socket.state !== 'open') {
      // As socketcluster-server's strict mode: nothing before the handshake.
      socket.disconnect(CLOSE_CODES.noHandshake);
      return;
    }
    this.expireToken(socket);
    switch (event) {
      case '#authenticate':
        return this.authenticate(socket, cid, packet.data);
      case '#removeAuthToken':
        socket.authToken = null;
        return this.revisit(socket, 'signed out');
      case '#subscribe':
        return this.subscribe(socket, cid, packet.data);
      case '#unsubscribe':
        return this.unsubscribe(socket, cid, packet.data);
      case '#publish':
        return this.publish(socket, cid, packet.data);
    }
    // Anything else is a transmit to a receiver (the worker has none) or a procedure call made
    // before the handshake completed (refused above): nothing to do.
  }

  private async handshake(socket: ClientSocket, cid: number | undefined, data: unknown): Promise<void> {
    if (cid === undefined || socket.state !== 'connecting') {
      socket.disconnect(CLOSE_CODES.handshakeRejected);
      return;
    }
    const auth = await this.verifyToken((data as { authToken?: unknown } | null)?.authToken);
    try {
      await this.options.gates.handshake(socket, auth);
    } catch (error) {
      socket.respondError(cid, error);
      socket.disconnect((error as { statusCode?: number }).statusCode ?? CLOSE_CODES.handshakeRejected);
      return;
    }
    if (socket.state !== 'connecting') return; // closed while the hook ran
    socket.authToken = auth.authToken;
    const status: Record<string, unknown> = { id: socket.id, pingTimeout: this.options.pingTimeoutMs, isAuthenticated: auth.authToken !== null };
    if (auth.authTokenError && auth.signedAuthToken != null) {
      status.authError = scErrors.dehydrateError(auth.authTokenError);
      socket.send({ event: '#removeAuthToken' });
    }
    socket.state = 'open';
    this.clients.set(socket.id, socket);
    this.options.onAuthenticated?.(socket);
    socket.respond(cid, status);
  }

  /**
   * A new token on an open socket (a refresh): verified and checked as at the handshake. Accepted,
   * it replaces the old one (its `exp` now bounds the socket's auth) and the socket leaves the
   * channels it no longer grants. Refused, the socket is signed out (`#removeAuthToken`) and leaves
   * the channels that needed the old token, as socketcluster-server deauthenticates on a bad token
   * and socketcluster-client clears its own on the error; the connection stays open.
   */
  private async authenticate(socket: ClientSocket, cid: number | undefined, data: unknown): Promise<void> {
    const auth = await this.verifyToken(data);
    let refusal: unknown = auth.authTokenError ?? (auth.authToken ? undefined : new scErrors.AuthTokenInvalidError('#authenticate needs a token'));
    if (refusal === undefined) {
      try {
        await this.options.gates.authenticate?.(socket, auth);
      } catch (error) {
        refusal = error;
      }
    }
    if (socket.state !== 'open') return;
    if (refusal !== undefined) {
      this.options.onAuthRefused?.(socket, refusal);
      socket.authToken = null;
      socket.send({ event: '#removeAuthToken' });
      await this.revisit(socket, 'the token was refused');
      if (cid !== undefined) socket.respondError(cid, refusal);
      return;
    }
    socket.authToken = auth.authToken;
    this.options.onAuthenticated?.(socket);
    await this.revisit(socket, 'the new token does not grant this channel');
    if (cid !== undefined) socket.respond(cid, { isAuthenticated: true, authError: null });
  }

  /**
   * After the socket's auth changed: unsubscribes it from each channel it may no longer hold and
   * says so with `#kickOut` (as socketcluster-server's kickOut; socketcluster-client marks the
   * channel unsubscribed and emits `kickOut`).
   */
  private async revisit(socket: ClientSocket, message: string): Promise<void> {
    const holds = this.options.gates.holds;
    if (!holds) return;
    for (const channel of [...socket.channels]) {
      if (!socket.channels.has(channel) || holds(socket, channel)) continue;
      socket.channels.delete(channel);
      await this.options.broker.unsubscribeSocket(socket, channel);
      socket.send({ event: '#kickOut', data: { channel, message } });
    }
  }

  private async subscribe(socket: ClientSocket, cid: number | undefined, data: unknown): Promise<void> {
    const channel = (data as { channel?: unknown } | null)?.channel;
    if (typeof channel !== 'string') {
      if (cid !== undefined) socket.respondError(cid, new scErrors.InvalidActionError('Subscribe channel name was malformatted'));
      return;
    }
    try {
      const limit = this.options.maxChannelsPerSocket;
      if (limit !== undefined && !socket.channels.has(channel) && socket.channels.size >= limit) {
        throw new scErrors.InvalidActionError(`a socket may subscribe to at most ${limit} channels at once`);
      }
      await this.options.gates.subscribe(socket, channel);
      if (socket.state !== 'open') return;
      socket.channels.add(channel);
      await this.options.broker.subscribeSocket(socket, channel);
    } catch (error) {
      if (cid !== undefined) socket.respondError(cid, error);
      return;
    }
    if (cid !== undefined) socket.respond(cid, undefined);
  }

  private async unsubscribe(socket: ClientSocket, cid: number | undefined, channel: unknown): Promise<void> {
    if (typeof channel !== 'string' || !socket.channels.delete(channel)) {
      const error = new scErrors.InvalidActionError(`Socket ${socket.id} is not subscribed to that channel`);
      if (cid !== undefined) socket.respondError(cid, error);
      return;
    }
    await this.options.broker.unsubscribeSocket(socket, channel);
    if (cid !== undefined) socket.respond(cid, undefined);
  }

  private async publish(socket: ClientSocket, cid: number | undefined, data: unknown): Promise<void> {
    const { channel, data: payload } = (data ?? {}) as { channel?: unknown; data?: unknown };
    try {
      if (typeof channel !== 'string') throw new scErrors.InvalidActionError('Publish channel name was malformatted');
      await this.options.gates.publish(socket, channel, payload);
      await this.options.broker.invokePublish(channel, payload);
    } catch (error) {
      if (cid !== undefined) socket.respondError(cid, error);
      return;
    }
    if (cid !== undefined) socket.respond(cid, undefined);
  }

  /** A token that expired while connected: the socket goes on unauthenticated, as socketcluster-server does. */
  private expireToken(socket: ClientSocket): void {
    const exp = socket.authToken?.exp;
    if (typeof exp === 'number' && Date.now() > exp * 1000) {
      socket.authToken = null;
      socket.send({ event: '#removeAuthToken' });
      this.revisit(socket, 'the token expired').catch((error: unknown) => this.options.onError(error, socket));
    }
  }
}
