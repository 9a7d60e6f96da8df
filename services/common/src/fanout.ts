import type AGSimpleBroker from 'ag-simple-broker';
import type { WebSocket } from 'ws';
import type { ClientSocket } from './socket-server.js';

/** The TCP socket under a ws WebSocket (ws 8's `_socket`). */
interface TcpSocket {
  cork(): void;
  uncork(): void;
  write(data: Buffer): boolean;
}

/** TCP sockets corked in this turn of the event loop, uncorked together once its work is done. */
const corked = new Set<TcpSocket>();
const uncorkAll = () => {
  for (const socket of corked) socket.uncork();
  corked.clear();
};

/**
 * One write per peer per turn of the event loop: corks the TCP socket under `ws` on its first
 * frame of the turn and uncorks every such socket once the turn's work (its microtasks included)
 * is done, so that whatever this process writes to a peer in one turn (a burst of publishes, the
 * acks of a batch of publishes) leaves in one syscall. A lone frame waits for nothing. Returns the
 * TCP socket, or undefined when ws has none (then ws.send writes as usual).
 */
export function corkForTurn(ws: WebSocket): TcpSocket | undefined {
  const tcp = (ws as unknown as { _socket?: TcpSocket })._socket;
  if (tcp && !corked.has(tcp)) {
    tcp.cork();
    if (corked.size === 0) process.nextTick(uncorkAll);
    corked.add(tcp);
  }
  return tcp;
}

/**
 * One unmasked, final text frame (RFC 6455 section 5.2). Servers do not mask, so the same bytes
 * serve every client: built once per publish instead of once per socket as `ws.send` would.
 */
export function textFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81; // FIN, opcode 1 (text)
  if (header === 2) frame[1] = length;
  else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, header);
  return frame;
}

interface SimpleBrokerInternals {
  _clientSubscribers: Record<string, Record<string, ClientSocket>>;
  _clientSubscribersCounter: Record<string, number>;
  _exchangeClient: { _channelMap: Record<string, unknown> };
  emit(event: string, data: unknown): void;
  transmitPublish(channel: string, data: unknown, suppressEvent?: boolean): Promise<void>;
}

/**
 * The delivery hot path. Each publish reaching this worker (from a broker shard or a local client)
 * is encoded once, as a complete WebSocket frame, and that frame is written to the TCP socket of
 * every open WebSocket subscribed to its channel: no per-socket UTF-8 encoding, header or second
 * write. (ws writes synchronously when, as here, there is no permessage-deflate and no Blob, so
 * these writes keep their order with ws's own; ws's bufferedAmount counts them.)
 *
 * Half of a busy worker's CPU went to `writev`, one syscall per frame per socket. Publishes arrive
 * from the brokers in bursts handled in one turn of the event loop, so each socket is corked on its
 * first frame of the turn and uncorked once the turn's work is done: the burst leaves in one write.
 * A lone message waits for nothing (the uncork runs as soon as the current work completes).
 * Written against ag-simple-broker 6's subscriber map and ws 8's `_socket`, which the worker pins.
 */
export function installDirectFanout(brokerEngine: AGSimpleBroker, delivered?: (sockets: number, data: unknown) => void): void {
  const broker = brokerEngine as unknown as SimpleBrokerInternals;
  // ag-simple-broker keys these by channel name in plain objects; without a prototype a name such
  // as `__proto__` or `constructor` (CHANNEL_NAME refuses them; cluster members are not checked)
  // is just another key, never Object.prototype. Installed before the first subscription.
  broker._clientSubscribers = Object.create(null) as SimpleBrokerInternals['_clientSubscribers'];
  broker._clientSubscribersCounter = Object.create(null) as Record<string, number>;
  broker._exchangeClient._channelMap = Object.create(null) as Record<string, unknown>;
  broker.transmitPublish = async (channel, data, suppressEvent) => {
    const packet = { channel, data };
    const subscribers = broker._clientSubscribers[channel];
    if (subscribers) {
      const payload = Buffer.from(JSON.stringify({ event: '#publish', data: packet }));
      let frame: Buffer | undefined;
      let sent = 0;
      for (const id in subscribers) {
        const ws = subscribers[id]!.ws;
        if (ws.readyState !== ws.OPEN) continue;
        sent++;
        const tcp = corkForTurn(ws);
        if (tcp) tcp.write((frame ??= textFrame(payload)));
        else ws.send(payload, { binary: false });
      }
      if (sent > 0) delivered?.(sent, data);
    }
    if (!suppressEvent) broker.emit('publish', packet);
  };
}
