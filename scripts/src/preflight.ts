import { connect } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { parseRabbitUrls, parseRedisUrl } from '@socketbridge/common';

export interface Dependency {
  name: string;
  url: string;
  ok: boolean;
  detail: string;
}

/**
 * false: plain TCP. Options: TLS (the URL's scheme asks for it) with Node's defaults plus these, so the
 * certificate is verified against the system CAs and NODE_EXTRA_CA_CERTS, as the services verify it.
 */
export type ProbeTls = false | ConnectionOptions;

/** Opens a TCP (or TLS) connection, sends `hello` and resolves with the first bytes the server answers. */
async function probe(host: string, port: number, hello: Buffer, timeoutMs: number, tls: ProbeTls): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tls ? connectTls({ ...tls, host, port }) : connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.write(hello));
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

interface Address {
  host: string;
  port: number;
  /** The URL's scheme asks for TLS (rediss…, amqps). */
  tls: ProbeTls;
}

/**
 * The services use the first of several addresses that answers (RabbitMQ nodes, sentinels, Redis
 * Cluster seeds): so does the check, in turn. `answers` reads a reply: true, or why it is not the server.
 */
async function firstAnswer(
  addresses: Address[],
  hello: Buffer,
  answers: (reply: Buffer) => true | string,
  timeoutMs: number,
): Promise<{ ok: true; at: Address } | { ok: false; detail: string }> {
  const failures: string[] = [];
  for (const at of addresses) {
    try {
      const verdict = answers(await probe(at.host, at.port, hello, timeoutMs, at.tls));
      if (verdict === true) return { ok: true, at };
      failures.push(`${at.host}:${at.port}: ${verdict}`);
    } catch (error) {
      failures.push(`${at.host}:${at.port}: ${(error as Error).message}`);
    }
  }
  return { ok: false, detail: failures.join('; ') };
}

const AMQP_HEADER = Buffer.from('AMQP\x00\x00\x09\x01', 'latin1');
const PING = Buffer.from('PING\r\n');
// A broker answers the AMQP 0-9-1 header with a method frame (type 1): connection.start.
const amqpAnswers = (reply: Buffer) => reply[0] === 1 || 'something answered, but not AMQP 0-9-1';
const pingAnswers = (reply: Buffer) => {
  const text = reply.toString();
  return text.startsWith('+PONG') || text.startsWith('-NOAUTH') || `unexpected answer ${JSON.stringify(text.slice(0, 40))}`;
};

/** Speaks just enough of each protocol to tell the real server from any process on that port. */
export async function checkRabbitMQ(url: string, timeoutMs = 2000): Promise<Dependency> {
  let nodes: Address[];
  try {
    nodes = parseRabbitUrls(url).map((node) => {
      const { hostname, port, protocol } = new URL(node);
      return { host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || (protocol === 'amqps:' ? 5671 : 5672)), tls: protocol === 'amqps:' && {} };
    });
  } catch (error) {
    return { name: 'RabbitMQ', url, ok: false, detail: (error as Error).message };
  }
  const result = await firstAnswer(nodes, AMQP_HEADER, amqpAnswers, timeoutMs);
  if (!result.ok) return { name: 'RabbitMQ', url, ok: false, detail: nodes.length > 1 ? `no node answered (${result.detail})` : result.detail };
  return { name: 'RabbitMQ', url, ok: true, detail: nodes.length > 1 ? `AMQP 0-9-1 answers at ${result.at.host}:${result.at.port}` : 'AMQP 0-9-1 answers' };
}

/** `tls`: options the TLS forms' check adds to Node's defaults (a test's CA). */
export async function checkRedis(url: string, timeoutMs = 2000, tls: ConnectionOptions = {}): Promise<Dependency> {
  let target;
  try {
    target = parseRedisUrl(url);
  } catch (error) {
    return { name: 'Redis', url, ok: false, detail: (error as Error).message };
  }
  if (target.kind === 'sentinel' || target.kind === 'cluster') {
    const [addresses, what] = target.kind === 'sentinel' ? [target.sentinels, 'Sentinel at'] : [target.nodes, 'Cluster node'];
    const result = await firstAnswer(addresses.map((at) => ({ ...at, tls: target.tls && tls })), PING, pingAnswers, timeoutMs);
    if (result.ok) return { name: 'Redis', url, ok: true, detail: `${what} ${result.at.host}:${result.at.port} answered PING` };
    return { name: 'Redis', url, ok: false, detail: `no ${target.kind === 'sentinel' ? 'sentinel' : 'Cluster seed node'} answered (${result.detail})` };
  }
  const { hostname, port, protocol } = new URL(url);
  const result = await firstAnswer([{ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || 6379), tls: protocol === 'rediss:' && tls }], PING, pingAnswers, timeoutMs);
  return { name: 'Redis', url, ok: result.ok, detail: result.ok ? 'PING answered' : result.detail };
}
