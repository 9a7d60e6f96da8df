import { connect } from 'node:net';
import { parseRedisUrl } from '@socketbridge/common';

export interface Dependency {
  name: string;
  url: string;
  ok: boolean;
  detail: string;
}

/** Opens a TCP connection, sends `hello` and resolves with the first bytes the server answers. */
async function probe(host: string, port: number, hello: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => socket.write(hello));
    socket.once('data', (data) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Speaks just enough of each protocol to tell the real server from any process on that port. */
export async function checkRabbitMQ(url: string, timeoutMs = 2000): Promise<Dependency> {
  const { hostname, port } = new URL(url);
  try {
    const reply = await probe(hostname, Number(port || 5672), Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'), timeoutMs);
    // A broker answers the AMQP 0-9-1 header with a method frame (type 1): connection.start.
    const ok = reply[0] === 1;
    return { name: 'RabbitMQ', url, ok, detail: ok ? 'AMQP 0-9-1 answers' : 'something answered, but not AMQP 0-9-1' };
  } catch (error) {
    return { name: 'RabbitMQ', url, ok: false, detail: (error as Error).message };
  }
}

export async function checkRedis(url: string, timeoutMs = 2000): Promise<Dependency> {
  let target;
  try {
    target = parseRedisUrl(url);
  } catch (error) {
    return { name: 'Redis', url, ok: false, detail: (error as Error).message };
  }
  if (target.kind === 'sentinel') {
    // The services ask any sentinel that answers for the master: so does the check, in turn.
    const failures: string[] = [];
    for (const { host, port } of target.sentinels) {
      try {
        const reply = (await probe(host, port, Buffer.from('PING\r\n'), timeoutMs)).toString();
        if (reply.startsWith('+PONG')) return { name: 'Redis', url, ok: true, detail: `Sentinel at ${host}:${port} answered PING` };
        failures.push(`${host}:${port} answered ${JSON.stringify(reply.slice(0, 40))}`);
      } catch (error) {
        failures.push(`${host}:${port}: ${(error as Error).message}`);
      }
    }
    return { name: 'Redis', url, ok: false, detail: `no sentinel answered (${failures.join('; ')})` };
  }
  if (target.kind === 'cluster') {
    // The services learn the cluster from any seed node that answers: so does the check, in turn.
    const failures: string[] = [];
    for (const { host, port } of target.nodes) {
      try {
        const reply = (await probe(host, port, Buffer.from('PING\r\n'), timeoutMs)).toString();
        if (reply.startsWith('+PONG') || reply.startsWith('-NOAUTH')) return { name: 'Redis', url, ok: true, detail: `Cluster node ${host}:${port} answered PING` };
        failures.push(`${host}:${port} answered ${JSON.stringify(reply.slice(0, 40))}`);
      } catch (error) {
        failures.push(`${host}:${port}: ${(error as Error).message}`);
      }
    }
    return { name: 'Redis', url, ok: false, detail: `no Cluster seed node answered (${failures.join('; ')})` };
  }
  const { hostname, port } = new URL(url);
  try {
    const reply = (await probe(hostname, Number(port || 6379), Buffer.from('PING\r\n'), timeoutMs)).toString();
    const ok = reply.startsWith('+PONG') || reply.startsWith('-NOAUTH');
    return { name: 'Redis', url, ok, detail: ok ? 'PING answered' : `unexpected answer ${JSON.stringify(reply.slice(0, 40))}` };
  } catch (error) {
    return { name: 'Redis', url, ok: false, detail: (error as Error).message };
  }
}
