import type AGSimpleBroker from 'ag-simple-broker';
import type { ClientSocket } from './socket-server.js';

/** The TCP socket under a ws WebSocket (ws 8's `_socket`). */
interface Corkable {
  cork(): void;
  uncork(): void;
}

interface SimpleBrokerInternals {
  _clientSubscribers: Record<string, Record<string, ClientSocket>>;
  emit(event: string, data: unknown): void;
  transmitPublish(channel: string, data: unknown, suppressEvent?: boolean): Promise<void>;
}

/**
 * The delivery hot path. Each publish reaching this worker (from a broker shard or a local client)
 * is encoded once and the frame written to every open socket subscribed to its channel.
 *
 * Half of a busy worker's CPU went to `writev`, one syscall per frame per socket. Publishes arrive
 * from the brokers in bursts handled in one turn of the event loop, so each socket is corked on its
 * first frame of the turn and uncorked once the turn's work is done: the burst leaves in one write.
 * A lone message waits for nothing (the uncork runs as soon as the current work completes).
 * Written against ag-simple-broker 6's subscriber map and ws 8's `_socket`, which the worker pins.
 */
export function installDirectFanout(brokerEngine: AGSimpleBroker, delivered?: (sockets: number, data: unknown) => void): void {
  const broker = brokerEngine as unknown as SimpleBrokerInternals;
  const corked = new Set<Corkable>();
  const uncorkAll = () => {
    for (const socket of corked) socket.uncork();
    corked.clear();
  };
  broker.transmitPublish = async (channel, data, suppressEvent) => {
    const packet = { channel, data };
    const subscribers = broker._clientSubscribers[channel];
    if (subscribers) {
      const frame = JSON.stringify({ event: '#publish', data: packet });
      let sent = 0;
      for (const id in subscribers) {
        const ws = subscribers[id]!.ws;
        if (ws.readyState !== ws.OPEN) continue;
        const tcp = (ws as unknown as { _socket?: Corkable })._socket;
        if (tcp && !corked.has(tcp)) {
          tcp.cork();
          if (corked.size === 0) process.nextTick(uncorkAll);
          corked.add(tcp);
        }
        ws.send(frame);
        sent++;
      }
      if (sent > 0) delivered?.(sent, data);
    }
    if (!suppressEvent) broker.emit('publish', packet);
  };
}
