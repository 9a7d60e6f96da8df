import {
  CLIENT_EVENTS,
  type ClientSocket,
  type PresenceNotice,
  type QueryReply,
  type SocketBroker,
} from '@socketbridge/common';
import { claimsOf } from './access.js';

/**
 * Who is subscribed to what on this worker: the answer to the server API's channel info and
 * presence queries, and where presence notices start and end. It sits between the socket server
 * and the broker engine on subscribe and unsubscribe only (a socket's close unsubscribes each of its
 * channels), never on a message's way: delivery still goes from the broker engine straight to the
 * sockets (fanout.ts).
 *
 * Keyed by channel name, client input: a Map. Each socket keeps the client id it subscribed with,
 * so its leave names the same client even after a sign-out or an expired token dropped its token.
 */
export class ChannelRoster {
  private readonly channels = new Map<string, Map<ClientSocket, string | undefined>>();
  /**
   * Joins other workers announced and not yet left, by worker, channel and client (a count of
   * sockets): the leaves to send for a worker that dies, since it cannot send them itself.
   */
  private readonly remote = new Map<string, Map<string, Map<string, number>>>();
  /** Workers seen among the live ones. */
  private readonly seenLive = new Set<string>();
  /** When each remote worker's notices were first heard: one never seen live is dead only after a grace (its first liveness entry may come after its first notices). */
  private readonly firstHeard = new Map<string, number>();

  constructor(
    private readonly options: {
      /** Whether the channel's policy asks for presence. */
      presence: (channel: string) => boolean;
      /** Sends a notice to every other worker (the reserved presence channel); errors are the caller's to log. */
      announce: (notice: PresenceNotice) => void;
      /** Whether the socket, with its auth as it is now, keeps the channel (else the socket server kicks it off next). */
      holds?: (socket: ClientSocket, channel: string) => boolean;
      /** Every subscription that starts or ends, on any channel (lifecycle events). */
      changed?: (socket: ClientSocket, channel: string, action: 'join' | 'leave', clientId: string | undefined) => void;
    },
  ) {}

  /** The broker engine as the socket server should see it: the same, with this roster kept on the side. */
  wrap(broker: SocketBroker): SocketBroker {
    return {
      subscribeSocket: async (socket, channel) => {
        await broker.subscribeSocket(socket, channel);
        this.joined(socket, channel);
      },
      unsubscribeSocket: async (socket, channel) => {
        this.left(socket, channel);
        await broker.unsubscribeSocket(socket, channel);
      },
      invokePublish: (channel, data) => broker.invokePublish(channel, data),
    };
  }

  /** How many sockets are subscribed to `channel` here. */
  count(channel: string): number {
    return this.channels.get(channel)?.size ?? 0;
  }

  /** This worker's answer to a query: the count, and for a presence channel up to `limit` distinct client ids. */
  answer(query: { id: string; channel: string; clients: boolean; limit: number }, instanceId: string): QueryReply {
    const reply: QueryReply = { id: query.id, instanceId, subscribers: this.count(query.channel) };
    // The publisher checks the policy too; a worker never lists a channel whose policy does not ask for it.
    if (!query.clients || !this.options.presence(query.channel)) return reply;
    const clients = new Set<string>();
    for (const clientId of this.channels.get(query.channel)?.values() ?? []) {
      if (clientId === undefined || clients.has(clientId)) continue;
      if (clients.size === query.limit) {
        reply.truncated = true;
        break;
      }
      clients.add(clientId);
    }
    reply.clients = [...clients];
    return reply;
  }

  /**
   * The socket's token changed (a refresh, possibly naming another client): on each channel it
   * stays on, a different client id leaves as the old client and joins as the new one. Channels it
   * loses are left alone here: the kick-off that follows leaves them as the old client, so the new
   * client's id never reaches a channel it may not hold.
   */
  reauthenticated(socket: ClientSocket): void {
    const clientId = claimsOf(socket.authToken)?.sub;
    for (const channel of socket.channels) {
      const sockets = this.channels.get(channel);
      if (!sockets?.has(socket) || this.options.holds?.(socket, channel) === false) continue;
      const previous = sockets.get(socket);
      if (previous === clientId) continue;
      sockets.set(socket, clientId);
      this.options.changed?.(socket, channel, 'leave', previous);
      this.options.changed?.(socket, channel, 'join', clientId);
      if (!this.options.presence(channel)) continue;
      if (previous !== undefined) this.notify({ channel, clientId: previous, action: 'leave' });
      if (clientId !== undefined) this.notify({ channel, clientId, action: 'join' });
    }
  }

  /** A notice another worker announced: to this worker's subscribers, and kept in case that worker dies. */
  received(notice: PresenceNotice, from: string): void {
    let channels = this.remote.get(from);
    if (!channels) this.remote.set(from, (channels = new Map()));
    if (!this.firstHeard.has(from)) this.firstHeard.set(from, Date.now());
    let clients = channels.get(notice.channel);
    if (!clients) channels.set(notice.channel, (clients = new Map()));
    const count = (clients.get(notice.clientId) ?? 0) + (notice.action === 'join' ? 1 : -1);
    if (count > 0) clients.set(notice.clientId, count);
    else clients.delete(notice.clientId);
    if (clients.size === 0) channels.delete(notice.channel);
    if (channels.size === 0) this.remote.delete(from);
    this.deliver(notice);
  }

  /**
   * The workers live now (their liveness entries in Redis). A worker that is not among them, and
   * was before or was first heard from more than `graceMs` ago, died without its leaves: they go to
   * this worker's subscribers now. Returns how many.
   */
  liveWorkers(live: ReadonlySet<string>, graceMs: number, now = Date.now()): number {
    for (const worker of live) this.seenLive.add(worker);
    let sent = 0;
    for (const [worker, channels] of this.remote) {
      if (live.has(worker)) continue;
      if (!this.seenLive.has(worker) && now - (this.firstHeard.get(worker) ?? now) <= graceMs) continue;
      this.remote.delete(worker);
      this.firstHeard.delete(worker);
      for (const [channel, clients] of channels) {
        for (const [clientId, count] of clients) {
          for (let i = 0; i < count; i++) this.deliver({ channel, clientId, action: 'leave' });
          sent += count;
        }
      }
    }
    for (const worker of this.seenLive) if (!live.has(worker)) this.seenLive.delete(worker);
    for (const worker of this.firstHeard.keys()) if (!this.remote.has(worker)) this.firstHeard.delete(worker);
    return sent;
  }

  /** A notice (from this worker or another) to this worker's subscribers of its channel, as a client event. */
  deliver(notice: PresenceNotice): number {
    const data: PresenceNotice = { channel: notice.channel, clientId: notice.clientId, action: notice.action };
    let sent = 0;
    for (const socket of this.channels.get(notice.channel)?.keys() ?? []) {
      socket.send({ event: CLIENT_EVENTS.presence, data });
      sent++;
    }
    return sent;
  }

  private joined(socket: ClientSocket, channel: string): void {
    if (socket.state === 'closed') return;
    let sockets = this.channels.get(channel);
    if (!sockets) this.channels.set(channel, (sockets = new Map()));
    if (sockets.has(socket)) return; // a repeated #subscribe
    const clientId = claimsOf(socket.authToken)?.sub;
    sockets.set(socket, clientId);
    this.options.changed?.(socket, channel, 'join', clientId);
    if (clientId !== undefined && this.options.presence(channel)) this.notify({ channel, clientId, action: 'join' });
  }

  private left(socket: ClientSocket, channel: string): void {
    const sockets = this.channels.get(channel);
    if (!sockets?.has(socket)) return;
    const clientId = sockets.get(socket);
    sockets.delete(socket);
    if (sockets.size === 0) this.channels.delete(channel);
    this.options.changed?.(socket, channel, 'leave', clientId);
    if (clientId !== undefined && this.options.presence(channel)) this.notify({ channel, clientId, action: 'leave' });
  }

  private notify(notice: PresenceNotice): void {
    this.deliver(notice);
    this.options.announce(notice);
  }
}

/** A presence notice as it arrives from another worker (with the sending worker's instance id): checked, else undefined. */
export function parsePresenceNotice(data: unknown): (PresenceNotice & { worker: string }) | undefined {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return undefined;
  const { channel, clientId, action, worker } = data as Record<string, unknown>;
  if (typeof channel !== 'string' || channel.length > 200 || typeof clientId !== 'string' || clientId.length > 200) return undefined;
  if (action !== 'join' && action !== 'leave') return undefined;
  if (typeof worker !== 'string' || worker === '' || worker.length > 300) return undefined;
  return { channel, clientId, action, worker };
}
