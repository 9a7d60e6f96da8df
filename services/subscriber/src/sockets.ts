import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';
import { memoryAuthEngine } from './auth.js';

/** Sockets opened at once in a load run: enough to ramp up quickly, few enough that 2 cores keep up with the handshakes. */
export const CONNECT_BATCH = 50;
/** How long one batch waits for a socket's handshake and subscriptions before moving on without it. */
const SETTLE_TIMEOUT_MS = 10000;

/**
 * Handshake refusals no retry can fix: socketcluster-client would reconnect forever with the same
 * token, so the run ends instead.
 */
const FATAL_HANDSHAKE_ERRORS = new Set(['AuthTokenExpiredError', 'AuthTokenInvalidError', 'AuthRequiredError']);

export interface PoolEvents {
  message(socket: number, channel: string, data: unknown): void;
  /** A line for the person running this (stderr). */
  status(line: string): void;
  /** The handshake was refused for good. */
  fatal(error: Error): void;
  /** The worker refused every channel this socket asked for. */
  nothingSubscribed(): void;
}

interface Member {
  socket: AGClientSocket;
  /** Channels the worker has not refused this socket. */
  wanted: number;
  subscribed: number;
  /** Ends this socket's wait in its connect batch. */
  settle?: () => void;
}

export interface PoolOptions {
  url: URL;
  token: string | null;
  channels: string[];
  events: PoolEvents;
}

/** socketcluster-client wants the URL in parts; a bare "/" path means its default /socketcluster/. */
function clientOptions(url: URL, token: string | null): AGClientSocket.ClientOptions {
  const secure = url.protocol === 'wss:';
  return {
    hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : secure ? 443 : 80,
    secure,
    ...(url.pathname !== '/' ? { path: url.pathname } : {}),
    authEngine: memoryAuthEngine(token),
  };
}

/**
 * N sockets to one worker, each subscribing to the same channels. With one socket every event is
 * reported; with many, only what the aggregate needs (counts, first errors, everyone subscribed).
 */
export class SocketPool {
  private readonly members: Member[] = [];
  private fullySubscribed = 0;
  private closed = false;
  private allSubscribedReported = false;
  private readonly reported = new Set<string>();

  constructor(private readonly options: PoolOptions) {}

  get size(): number {
    return this.members.length;
  }

  connected(): number {
    let open = 0;
    for (const { socket } of this.members) if (socket.state === socket.OPEN) open++;
    return open;
  }

  /** Sockets holding every channel the worker allowed them. */
  subscribed(): number {
    return this.fullySubscribed;
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
      member.socket.disconnect();
    }
  }

  private openOne(index: number, total: number): Promise<void> {
    const { url, token, channels, events } = this.options;
    const socket = socketClusterClient.create(clientOptions(url, token));
    const member: Member = { socket, wanted: channels.length, subscribed: 0 };
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
    const settleIfDone = () => {
      if (member.subscribed >= member.wanted) member.settle?.();
    };
    // Once per distinct text in a load run: a thousand sockets failing alike is one line, not a thousand.
    const report = (line: string) => {
      if (single || !this.reported.has(line)) events.status(line);
      if (!single) this.reported.add(line);
    };

    for (const name of channels) {
      const channel = socket.subscribe(name);
      void (async () => {
        for await (const data of channel) events.message(index, name, data);
      })();
    }

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
    void (async () => {
      for await (const { code, reason } of socket.listener('disconnect')) {
        if (this.closed) break;
        report(`disconnected (${code}${reason ? ` ${reason}` : ''}), reconnecting`);
      }
    })();
    void (async () => {
      for await (const { channel, oldChannelState, newChannelState } of socket.listener('subscribeStateChange')) {
        const wasFull = this.isFull(member);
        if (newChannelState === 'subscribed') member.subscribed++;
        else if (oldChannelState === 'subscribed') member.subscribed--;
        this.updateFull(member, wasFull, total);
        if (single && newChannelState === 'subscribed') events.status(`subscribed to ${channel}`);
        settleIfDone();
      }
    })();
    void (async () => {
      for await (const { channel, error } of socket.listener('subscribeFail')) {
        const wasFull = this.isFull(member);
        member.wanted--;
        report(`subscription to ${channel} refused: ${error.name}: ${error.message}`);
        this.updateFull(member, wasFull, total);
        settleIfDone();
        if (member.wanted === 0) events.nothingSubscribed();
      }
    })();
    return settled;
  }

  private isFull(member: Member): boolean {
    return member.wanted > 0 && member.subscribed >= member.wanted;
  }

  private updateFull(member: Member, wasFull: boolean, total: number): void {
    const full = this.isFull(member);
    if (full === wasFull) return;
    this.fullySubscribed += full ? 1 : -1;
    // Said once, for the load run's caller to know when publishing will reach every socket.
    if (total > 1 && !this.allSubscribedReported && this.fullySubscribed === total) {
      this.allSubscribedReported = true;
      this.options.events.status(`all ${total} sockets subscribed`);
    }
  }
}
