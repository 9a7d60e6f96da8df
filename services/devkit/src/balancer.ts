import { createServer, connect, type Server, type Socket } from 'node:net';
import { listen } from '@socketbridge/common';

/**
 * A TCP load balancer in front of the workers, standing in for a Kubernetes Service: each new
 * connection goes to the next backend that accepts it, so a client whose worker died or drained
 * reconnects to a live one, as it would in a cluster.
 */
export class TcpBalancer {
  private server: Server;
  private next = 0;
  private readonly open = new Set<Socket>();
  port = 0;

  constructor(private readonly backends: () => number[]) {
    this.server = createServer((client) => this.route(client));
  }

  async start(): Promise<number> {
    this.port = await listen(this.server, 0, '127.0.0.1');
    return this.port;
  }

  private route(client: Socket, attempt = 0): void {
    const ports = this.backends();
    if (ports.length === 0 || attempt >= ports.length) {
      client.destroy();
      return;
    }
    const port = ports[this.next++ % ports.length]!;
    client.pause();
    const upstream = connect({ host: '127.0.0.1', port });
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      this.open.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.on('error', () => {
      // A backend that refuses (dead, or draining and closed) is skipped: try the next one.
      if (!connected) this.route(client, attempt + 1);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.open.delete(client);
      this.open.delete(upstream);
    };
    client.once('close', close);
    upstream.once('close', () => {
      if (connected) close();
    });
    client.on('error', close);
  }

  async stop(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
