import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode = 'open' | 'blackhole' | 'cut';

/**
 * A TCP proxy the test controls, between a service and a shared dependency (RabbitMQ) the test must
 * not stop: `open` forwards, `blackhole` keeps connections and accepts new ones but forwards nothing
 * (a network that drops packets), `cut` closes every connection and refuses new ones. Going back to
 * `open` resets the connections that lived through an outage, as a real network path's would.
 */
export class TcpProxy {
  mode: ProxyMode = 'open';
  private readonly pairs = new Set<[Socket, Socket]>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    server.on('connection', (client) => proxy.accept(client, target));
    return proxy;
  }

  setMode(mode: ProxyMode): void {
    const wasOpen = this.mode === 'open';
    this.mode = mode;
    if (mode === 'cut' || (mode === 'open' && !wasOpen)) this.dropAll();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    if (this.mode === 'cut') {
      client.destroy();
      return;
    }
    const upstream = createConnection(target);
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (data) => {
        if (this.mode === 'open') to.write(data);
      });
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of pair) {
      socket.on('error', end);
      socket.on('close', end);
    }
  }

  private dropAll(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }
}
