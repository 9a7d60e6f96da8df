import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';
import { CLIENT_EVENTS, RECOVER_PROCEDURE, type Envelope, type PresenceNotice, type RecoverReply } from '@socketbridge/common/wire';
import { ChannelOrder, type Delivery } from './ordering.js';

export interface ClientOptions {
  hostname?: string;
  port?: number;
  secure?: boolean;
  path?: string;
  /** The JWT from `POST /v1/create-channel-client` or `POST /v1/tokens`; none: anonymous. */
  token?: string;
  /** Recover missed messages from history after a reconnect or a gap (default true). */
  recover?: boolean;
  /** Passed to socketcluster-client as they are (reconnect timing, ack timeout…). */
  socketOptions?: Record<string, unknown>;
  /**
   * Gets a fresh token from the application (its sign-in, or its identity provider). Called
   * `refreshBeforeSeconds` before the current token's `exp` (at most halfway through its life); the
   * new token goes to the worker on the open socket (`#authenticate`): no reconnect, subscriptions
   * kept if the new token still grants them (the worker kicks the client off those it does not).
   */
  refreshToken?: () => Promise<string>;
  /** How long before `exp` to refresh (default 30). */
  refreshBeforeSeconds?: number;
  /** A refresh failed (the callback threw, or the worker refused the token); it is retried until the token expires. */
  onRefreshError?: (error: unknown) => void;
}

export interface SubscribeOptions {
  /** Resume after this offset (for example one saved before a page reload). */
  since?: string;
  onMessage: (envelope: Envelope, channel: string) => void;
  /** History no longer reached back: messages between `since` and the next delivered one are lost. */
  onGap?: (gap: { channel: string; since: string; reason: string }) => void;
  /** The worker took the channel away (a refreshed or expired token no longer grants it): it is unsubscribed. */
  onKickOut?: (kick: { channel: string; message: string }) => void;
  /**
   * On a channel whose policy sets presence: a socket of `clientId` subscribed (`join`) or left
   * (`leave`), on any worker. Notices come as their own event, outside the channel's messages: they
   * are not in its history and do not touch `onMessage`'s order.
   */
  onPresence?: (notice: PresenceNotice) => void;
}

export interface ClientStats {
  delivered: number;
  recovered: number;
  duplicates: number;
  gaps: number;
  /** Envelopes not delivered: malformed, or not confirmed by the channel's history. */
  refused: number;
}

/** A recover reply as it arrives: the worker's word, so every field is checked before use. */
type UntrustedReply = Partial<RecoverReply> & { reason?: string };

interface ChannelState {
  name: string;
  order: ChannelOrder;
  options: SubscribeOptions;
  recovering: boolean;
  /** A recovery was asked for while one ran: run again when it ends. */
  again: boolean;
  close: () => void;
}

/**
 * Reconnect timing after a lost connection. socketcluster-client's own defaults wait 10 s plus up
 * to 10 s of jitter, which leaves the clients of a crashed worker dark for up to 20 s. Ours: back
 * after 0.5 s plus up to 1 s of jitter, so the thousands of clients of one worker arrive spread over
 * a second rather than at once, then ×1.5 per failed attempt, capped at 30 s while nothing answers.
 * The same delay follows a draining worker's close (CLOSE_CODES.draining, 4100), on top of the worker's own spreading.
 */
export const RECONNECT_OPTIONS = { initialDelay: 500, randomness: 1000, multiplier: 1.5, maxDelay: 30000 } as const;

/** How long a refresh made while a handshake is under way waits for it. */
const HANDSHAKE_WAIT_MS = 20_000;

/** A JWT's `iat` and `exp` (seconds), read without verifying: only to know when to refresh. */
export function tokenTimes(token: string | null | undefined): { iat?: number; exp?: number } {
  const part = token?.split('.')[1];
  if (!part) return {};
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const { iat, exp } = JSON.parse(json) as { iat?: unknown; exp?: unknown };
    return { ...(typeof iat === 'number' && { iat }), ...(typeof exp === 'number' && { exp }) };
  } catch {
    return {};
  }
}

/**
 * An in-memory token store for socketcluster-client's `authEngine` option: the client sends the
 * token with every handshake, as it would from localStorage in a browser.
 */
export function tokenAuthEngine(token: string | null | undefined) {
  let current: string | null = token ?? null;
  return {
    saveToken: async (_name: string, value: string) => (current = value),
    removeToken: async () => {
      const old = current;
      current = null;
      return old;
    },
    loadToken: async () => current,
  };
}

/**
 * A SocketBridge client on socketcluster-client: every message of a subscribed channel exactly
 * once and in order, across reconnects, worker restarts and broker changes, as long as the
 * channel's history reaches back; otherwise an explicit gap.
 */
export class SocketBridgeClient {
  readonly socket: AGClientSocket;
  readonly stats: ClientStats = { delivered: 0, recovered: 0, duplicates: 0, gaps: 0, refused: 0 };
  private readonly channels = new Map<string, ChannelState>();
  private readonly recover: boolean;
  private readonly refresh: Pick<ClientOptions, 'refreshToken' | 'refreshBeforeSeconds' | 'onRefreshError'>;
  private token: string | null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(options: ClientOptions = {}) {
    this.recover = options.recover ?? true;
    this.refresh = options;
    this.token = options.token ?? null;
    this.socket = socketClusterClient.create({
      hostname: options.hostname ?? '127.0.0.1',
      port: options.port ?? 8000,
      secure: options.secure ?? false,
      ...(options.path ? { path: options.path } : {}),
      authEngine: tokenAuthEngine(options.token),
      // A copy: socketcluster-client writes its defaults into the object it is given.
      autoReconnectOptions: { ...RECONNECT_OPTIONS },
      ...options.socketOptions,
    });
    const kicks = this.socket.listener('kickOut');
    void (async () => {
      for await (const { channel, message } of kicks) this.kickedOut(channel, String(message ?? ''));
    })();
    const notices = this.socket.receiver(CLIENT_EVENTS.presence);
    void (async () => {
      for await (const notice of notices) {
        const { channel, clientId, action } = (notice ?? {}) as Partial<PresenceNotice>;
        if (typeof channel !== 'string' || typeof clientId !== 'string' || (action !== 'join' && action !== 'leave')) continue;
        this.channels.get(channel)?.options.onPresence?.({ channel, clientId, action });
      }
    })();
    this.scheduleRefresh();
  }

  /** Refreshes the token now (also what the timer does before `exp`); resolves once the worker took it. */
  async refreshNow(): Promise<void> {
    const get = this.refresh.refreshToken;
    if (!get) throw new Error('no refreshToken callback was given');
    clearTimeout(this.refreshTimer);
    try {
      const token = await get();
      if (this.closed) return;
      if (this.socket.state === this.socket.OPEN) await this.socket.authenticate(token);
      else {
        await this.socket.auth.saveToken(this.socket.authTokenName, token, {}); // the next handshake carries it
        // A handshake under way may have read the old token already: then send the new one once it completes.
        if (this.socket.state === this.socket.CONNECTING) void this.afterHandshake(token);
      }
      this.token = token;
      this.scheduleRefresh();
    } catch (error) {
      this.refresh.onRefreshError?.(error);
      this.scheduleRetry();
      throw error;
    }
  }

  private async afterHandshake(token: string): Promise<void> {
    try {
      await this.socket.listener('connect').once(HANDSHAKE_WAIT_MS);
      if (!this.closed && this.token === token && this.socket.signedAuthToken !== token && this.socket.state === this.socket.OPEN) {
        await this.socket.authenticate(token);
      }
    } catch (error) {
      if ((error as Error).name !== 'TimeoutError') this.refresh.onRefreshError?.(error);
    }
  }

  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const { iat, exp } = tokenTimes(this.token);
    if (!this.refresh.refreshToken || exp === undefined || this.closed) return;
    let lead = (this.refresh.refreshBeforeSeconds ?? 30) * 1000;
    if (iat !== undefined) lead = Math.min(lead, ((exp - iat) * 1000) / 2);
    this.arm(exp * 1000 - lead - Date.now());
  }

  /** After a failed refresh: again in a quarter of the time left (at least a second), while the token lasts. */
  private scheduleRetry(): void {
    const { exp } = tokenTimes(this.token);
    const left = exp === undefined ? 0 : exp * 1000 - Date.now();
    if (left > 0 && !this.closed) this.arm(Math.max(1000, left / 4));
  }

  private arm(delayMs: number): void {
    clearTimeout(this.refreshTimer);
    const timer = setTimeout(() => void this.refreshNow().catch(() => undefined), Math.max(0, delayMs));
    (timer as { unref?: () => void }).unref?.();
    this.refreshTimer = timer;
  }

  private kickedOut(name: string, message: string): void {
    const state = this.channels.get(name);
    if (!state) return;
    this.channels.delete(name);
    state.close();
    state.options.onKickOut?.({ channel: name, message });
  }

  /** Resolves once connected (rejects with the refusal if the worker turned the handshake away). */
  async connected(timeoutMs = 10000): Promise<void> {
    if (this.socket.state === this.socket.OPEN) return;
    const outcome = await Promise.race([
      this.socket.listener('connect').once().then(() => undefined),
      this.socket.listener('error').once().then(({ error }) => error),
      new Promise<Error>((resolve) => setTimeout(() => resolve(new Error(`not connected within ${timeoutMs} ms`)), timeoutMs)),
    ]);
    if (outcome) throw outcome;
  }

  /** Subscribes; resolves when the worker accepted, rejects with its refusal. */
  async subscribe(name: string, options: SubscribeOptions): Promise<void> {
    if (this.channels.has(name)) throw new Error(`already subscribed to ${name}`);
    const channel = this.socket.subscribe(name);
    const state: ChannelState = {
      name,
      order: new ChannelOrder(options.since),
      options,
      recovering: false,
      again: false,
      close: () => channel.close(),
    };
    this.channels.set(name, state);
    void (async () => {
      for await (const data of channel) this.apply(state, state.order.accept(data as Envelope));
    })();
    // Every (re)subscription: recover what was published while we were not subscribed. Only
    // after the worker confirmed, so nothing falls between the history read and the live stream.
    void (async () => {
      for await (const _event of channel.listener('subscribe')) {
        if (state.order.last !== undefined) void this.recoverChannel(state);
      }
    })();
    const outcome = await Promise.race([
      channel.listener('subscribe').once().then(() => undefined),
      channel.listener('subscribeFail').once().then(({ error }) => error),
    ]);
    if (outcome) {
      this.channels.delete(name);
      channel.close();
      throw outcome;
    }
  }

  lastOffset(name: string): string | undefined {
    return this.channels.get(name)?.order.last;
  }

  unsubscribe(name: string): void {
    const state = this.channels.get(name);
    if (!state) return;
    this.channels.delete(name);
    this.socket.unsubscribe(name);
    state.close();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.refreshTimer);
    for (const name of [...this.channels.keys()]) this.unsubscribe(name);
    this.socket.disconnect();
  }

  private apply(state: ChannelState, deliveries: Delivery[], recovered = false): void {
    for (const delivery of deliveries) {
      if (delivery.kind === 'duplicate') {
        this.stats.duplicates++;
        continue;
      }
      if (delivery.kind === 'refused') {
        this.stats.refused++;
        continue;
      }
      this.stats.delivered++;
      if (recovered) this.stats.recovered++;
      state.options.onMessage(delivery.envelope, state.name);
    }
    if (state.order.hasGap) void this.recoverChannel(state);
  }

  private async recoverChannel(state: ChannelState): Promise<void> {
    if (!this.recover) {
      // Plain SCC behaviour: carry on from what arrives (in offset order), and count what was skipped.
      if (state.order.hasGap) {
        this.stats.gaps++;
        state.options.onGap?.({ channel: state.name, since: state.order.last ?? '0-0', reason: 'recovery is off' });
        this.apply(state, state.order.releaseHeld());
      }
      return;
    }
    if (state.recovering) {
      state.again = true;
      return;
    }
    state.recovering = true;
    try {
      do {
        state.again = false;
        const mark = state.order.mark();
        let complete = false;
        for (let page = 0; page < 10000; page++) {
          const since = state.order.last;
          if (since === undefined || this.channels.get(state.name) !== state) return;
          const reply = (await this.socket.invoke(RECOVER_PROCEDURE, { channel: state.name, since })) as UntrustedReply;
          if (!reply.recovered) this.gap(state, reply.reason ?? 'history no longer reaches back', reply.entries ?? []);
          else this.apply(state, state.order.recovered(reply.entries ?? []), true);
          if (!reply.more) {
            complete = reply.recovered === true;
            break;
          }
        }
        // History up to its end did not hold what was waiting before we asked: not a real message.
        if (complete) this.apply(state, state.order.refuseUnconfirmed(mark));
      } while (state.again);
    } catch {
      // Disconnected or refused mid-way: the next (re)subscription tries again from the last offset.
    } finally {
      state.recovering = false;
    }
  }

  private gap(state: ChannelState, reason: string, entries: Envelope[]): void {
    const since = state.order.last ?? '0-0';
    this.stats.gaps++;
    state.options.onGap?.({ channel: state.name, since, reason });
    this.apply(state, state.order.skipGap(entries), true);
  }
}
