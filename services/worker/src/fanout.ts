import type { AGServer } from 'socketcluster-server';

/** The TCP socket under a ws WebSocket (ws 8's `_socket`). */
interface Corkable {
  cork(): void;
  uncork(): void;
}

interface SimpleBrokerInternals {
  _codec?: { encode(object: unknown): string };
  _clientSubscribers: Record<string, Record<string, { state: string; OPEN: string; socket: { send(data: string): void; _socket?: Corkable } }>>;
  emit(event: string, data: unknown): void;
  transmitPublish(channel: string, data: unknown, suppressEvent?: boolean): Promise<void>;
}

/**
 * The delivery hot path. ag-simple-broker already encodes a publish once per worker, but then
 * hands it to every socket through `transmit`: an async call, a per-socket consumable stream and
 * a middleware pass each, per message per socket. With no outbound middleware (the worker sets
 * none) all of that does nothing, so the encoded frame goes straight to each open socket's
 * WebSocket. `delivered` hears, once per publish, how many sockets it was written to (for metrics).
 *
 * Half of a busy worker's CPU went to `writev`, one syscall per frame per socket. Publishes arrive
 * from the brokers in bursts handled in one turn of the event loop, so each socket is corked on its
 * first frame of the turn and uncorked once the turn's work is done: the burst leaves in one write.
 * A lone message waits for nothing (the uncork runs as soon as the current work completes).
 * Written against ag-simple-broker 6's and ws 8's internals, which the worker pins.
 */
export function installDirectFanout(agServer: AGServer, delivered?: (sockets: number, data: unknown) => void): void {
  if (agServer.hasMiddleware(agServer.MIDDLEWARE_OUTBOUND)) return;
  const broker = agServer.brokerEngine as unknown as SimpleBrokerInternals;
  const codec = broker._codec;
  if (!codec || typeof broker._clientSubscribers !== 'object') return;
  const original = broker.transmitPublish.bind(broker);
  const corked = new Set<Corkable>();
  const uncorkAll = () => {
    for (const socket of corked) socket.uncork();
    corked.clear();
  };
  broker.transmitPublish = async (channel, data, suppressEvent) => {
    const subscribers = broker._clientSubscribers[channel];
    if (!subscribers) return original(channel, data, suppressEvent);
    const packet = { channel, data };
    const frame = codec.encode({ event: '#publish', data: packet });
    let sent = 0;
    for (const id in subscribers) {
      const socket = subscribers[id]!;
      if (socket.state === socket.OPEN) {
        const tcp = socket.socket._socket;
        if (tcp && !corked.has(tcp)) {
          tcp.cork();
          if (corked.size === 0) process.nextTick(uncorkAll);
          corked.add(tcp);
        }
        socket.socket.send(frame);
        sent++;
      }
    }
    if (sent > 0) delivered?.(sent, data);
    if (!suppressEvent) broker.emit('publish', packet);
  };
}
