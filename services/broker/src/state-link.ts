import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';
import { PROCEDURES, linkErrorFields, type BrokerJoinData, type InstanceType, type Logger } from '@socketbridge/common';

export interface StateLinkOptions {
  host: string;
  port: number;
  authKey: string | undefined;
  instancePort: number;
  instanceType: InstanceType;
  version: string;
  join: BrokerJoinData;
  retryDelayMs: number;
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  logger: Logger;
}

/**
 * A broker's link to the state server, as scc-broker keeps it: connect with the handshake query,
 * join on every (re)connect, retry a refused join after the retry delay.
 */
export class StateLink {
  readonly socket: AGClientSocket;
  private left = false;

  constructor(private readonly options: StateLinkOptions) {
    const socket = socketClusterClient.create({
      hostname: options.host,
      port: options.port,
      connectTimeout: options.connectTimeoutMs,
      ackTimeout: options.ackTimeoutMs,
      autoReconnectOptions: {
        initialDelay: options.retryDelayMs,
        randomness: 1000,
        multiplier: 1,
        maxDelay: options.retryDelayMs + 1000,
      },
      query: {
        authKey: options.authKey ?? '',
        instancePort: String(options.instancePort),
        instanceType: options.instanceType,
        version: options.version,
      },
    });
    this.socket = socket;
    void (async () => {
      for await (const { error } of socket.listener('error')) {
        options.logger.warn(linkErrorFields(error), 'state server link error');
      }
    })();
    void (async () => {
      for await (const _event of socket.listener('connect')) void this.join();
    })();
  }

  private async join(): Promise<void> {
    if (this.left) return;
    try {
      await this.socket.invoke(PROCEDURES.brokerJoin, this.options.join);
      this.options.logger.info('joined the cluster');
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'join refused: retrying');
      if (this.socket.state === this.socket.OPEN) setTimeout(() => void this.join(), this.options.retryDelayMs);
    }
  }

  /** Tells the state server we leave (it then remaps the workers) and stops rejoining. */
  async leave(): Promise<boolean> {
    this.left = true;
    let acknowledged = false;
    if (this.socket.state === this.socket.OPEN) {
      try {
        await this.socket.invoke(PROCEDURES.brokerLeave, {});
        acknowledged = true;
      } catch (error) {
        this.options.logger.warn({ err: (error as Error).message }, 'leave not acknowledged');
      }
    }
    // Disconnecting also counts as leaving, for state servers that never answered.
    this.socket.disconnect();
    return acknowledged;
  }
}
