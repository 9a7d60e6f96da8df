import { SocketBridgeClient, type ClientOptions, type ClientStats, type Envelope, type SubscribeOptions } from '@socketbridge/client';
import type { SocketErrorName } from '@socketbridge/common/wire';

/** Sockets opened at once in a load run: enough to ramp up quickly, few enough that 2 cores keep up with the handshakes. */
export const CONNECT_BATCH = 50;
/** How long one batch waits for a socket's handshake and subscriptions before moving on without it. */
const SETTLE_TIMEOUT_MS = 10000;

/**
 * Handshake refusals no retry can fix: socketcluster-client would reconnect forever with the same
 * token, so the run ends instead.
 */
const FATAL_HANDSHAKE_ERRORS = new Set<string>(['AuthTokenExpiredError', 'AuthTokenInvalidError', 'AuthRequiredError'] satisfies SocketErrorName[]);

export type Gap = Parameters<NonNullable<SubscribeOptions['onGap']>>[0];

export interface PoolEvents {
  /** One message as the client library delivers it: exactly once and in order per socket and channel. */
  message(socket: number, channel: string, envelope: Envelope): void;
  /** Messages the library could not recover (history no longer reached back, or recovery is off). */
  gap(socket: number, gap: Gap): void;
  /** A line for the person running this (stderr). */
  status(line: string): void;
  /** The handshake was refused for good. */
  fatal(error: Error): void;
  /** The worker refused every channel this socket asked for. */
  nothingSubscribed(): void;
}

interface Member {
  client: SocketBridgeClient;
  /** Channels the worker accepted, once it answered every subscription. */
  accepted: string[];
  /** Ends this socket's wait in its connect batch. */
  settle?: () => void;
}

export interface PoolOptions {
  url: URL;
  token: string | null;
  channels: string[];
  /** Recover missed messages from history (the library's default); false: plain SCC delivery. */
  recover: boolean;
  events: PoolEvents;
}

/** The library wants the URL in parts; a bare "/" path means socketcluster-client's default /socketcluster/. */
export function clientOptions(url: URL, token: string | null, recover: boolean): ClientOptions {
  const secure = url.protocol === 'wss:';
  return {
    hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : secure ? 443 : 80,
    secure,
    ...(url.pathname !== '/' ? { path: url.pathname } : {}),
    ...(token !== null ? { token } : {}),
    recover,
  };
}

/**
 * N SocketBridge clients to one worker, each subscribing to the same channels. With one socket
 * every event is reported; with many, only what the aggregate needs (counts, first errors,
 * everyone subscribed).
 */
export class SocketPool {
  private readonly members: Member[] = [];
  /** Sockets whose subscriptions the worker answered, with at least one accepted. */
  private answered = 0;
  private closed = false;
  private readonly reported = new Set<string>();

  constructor(private readonly options: PoolOptions) {}

  get size(): number {
    return this.members.length;
  }

  connected(): number {
    let open = 0;
    for (const { client } of this.members) if (client.socket.state === client.socket.OPEN) open++;
    return open;
  }

  /** Sockets holding every channel the worker allowed them right now. */
  subscribed(): number {
    let full = 0;
    for (const { client, accepted } of this.members) if (accepted.length && accepted.every((name) => client.socket.isSubscribed(name))) full++;
    return full;
  }

  /** The client library's counts, summed over every socket. */
  stats(): ClientStats {
    const sum: ClientStats = { delivered: 0, recovered: 0, duplicates: 0, gaps: 0, refused: 0 };
    for (const { client } of this.members) for (const key of Object.keys(sum) as Array<keyof ClientStats>) sum[key] += client.stats[key];
    return sum;
  }

  /** Opens `count` sockets, CONNECT_BATCH at a time; resolves once the last batch settled or the pool was closed. */
  async open(count: number): Promise<void> {
    for (let start = 0; start < count && !this.closed; start += CONNECT_BATCH) {
      const batch: Array<Promise<void>> = [];
      for (let index = start; index < Math.min(count, start + CONNECT_BATCH); index++) batch.push(this.openOne(index, count));
      await Promise.all(batch);
    }
  }

  close(): void {
    this.closed = true;
    for (const member of this.members) {
      member.settle?.();
      member.client.close();
    }
  }

  private openOne(index: number, total: number): Promise<void> {
    const { url, token, channels, recover, events } = this.options;
    const client = new SocketBridgeClient(clientOptions(url, token, recover));
    const { socket } = client;
    const member: Member = { client, accepted: [] };
    this.members.push(member);
    const single = total === 1;

    const settled = new Promise<void>((resolve) => {
      const timer = setTimeout(() => member.settle?.(), SETTLE_TIMEOUT_MS);
      member.settle = () => {
        clearTimeout(timer);
        member.settle = undefined;
        resolve();
      };
    });
    // Once per distinct text in a load run: a thousand sockets failing alike is one line, not a thousand.
    const report = (line: string) => {
      if (single || !this.reported.has(line)) events.status(line);
      if (!single) this.reported.add(line);
    };

    // Status only: the library itself resubscribes and recovers after every reconnect.
    void (async () => {
      for await (const { error } of socket.listener('error')) {
        if (this.closed) break;
        if (FATAL_HANDSHAKE_ERRORS.has(error.name)) {
          events.fatal(error);
          break;
        }
        report(`connection error: ${error.name}: ${error.message}`);
        member.settle?.();
      }
    })();
    void (async () => {
      for await (const _event of socket.listener('connect')) {
        if (single) events.status(`connected to ${url.href} (${socket.authState === socket.AUTHENTICATED ? 'signed in' : 'anonymous'})`);
      }
    })();
    if (single) {
      void (async () => {
        for await (const { channel } of socket.listener('subscribe')) events.status(`subscribed to ${channel}`);
      })();
    }
    void (async () => {
      for await (const { code, reason } of socket.listener('disconnect')) {
        if (this.closed) break;
        report(`disconnected (${code}${reason ? ` ${reason}` : ''}), reconnecting`);
      }
    })();

    const answers = channels.map((name) =>
      client
        .subscribe(name, {
          onMessage: (envelope, channel) => events.message(index, channel, envelope),
          onGap: (gap) => events.gap(index, gap),
        })
        .then(
          () => name,
          (error: Error) => {
            if (!this.closed) report(`subscription to ${name} refused: ${error.name}: ${error.message}`);
            return undefined;
          },
        ),
    );
    void Promise.all(answers).then((names) => {
      member.accepted = names.filter((name) => name !== undefined);
      member.settle?.();
      if (this.closed) return;
      if (!member.accepted.length) events.nothingSubscribed();
      // Said once, for the load run's caller to know when publishing will reach every socket.
      else if (++this.answered === total && total > 1) events.status(`all ${total} sockets subscribed`);
    });
    return settled;
  }
}
