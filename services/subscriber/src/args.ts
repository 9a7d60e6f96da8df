import { parseArgs } from 'node:util';
import { CHANNEL_NAME } from '@socketbridge/common';
import { tokenSubject } from './auth.js';

export const MAX_CLIENTS = 10000;
const DEFAULT_WORKER_URL = 'ws://127.0.0.1:8000';
const DEFAULT_PUBLISHER_URL = 'http://127.0.0.1:3000';

export type Auth =
  | { kind: 'anonymous' }
  | { kind: 'token'; token: string }
  | { kind: 'login'; email: string; password: string; publisher: URL };

export interface Options {
  url: URL;
  auth: Auth;
  /** Empty only with `login`: the publisher's answer names the client's channel. */
  channels: string[];
  stats: boolean;
  clients: number;
  durationMs: number | undefined;
  count: number | undefined;
  /** Recover what a reconnect missed from history (the client library's default); --no-recover turns it off. */
  recover: boolean;
}

/** Bad input on the command line: main prints it with the usage and exits 2. */
export class UsageError extends Error {}

export const usage = `Usage: socketsub [options]

Subscribes to SocketBridge channels on a worker and prints every message as a JSON line
{"channel":...,"envelope":{"id","offset","prev","ts","data"}} on stdout; status goes to stderr.
Each socket gets every message of a channel once and in order, recovering what a reconnect missed
from the channel's history; what history no longer holds is reported as a gap.

Connection
  --url URL              worker to connect to (ws:// or wss://)
                         default: $SOCKETBRIDGE_WORKER_URL or ${DEFAULT_WORKER_URL}
  --token JWT            connect signed in with this token
  --email E --password P sign in through the publisher (POST /v1/tokens) first
  --publisher URL        publisher for --email/--password
                         default: $SOCKETBRIDGE_PUBLISHER_URL or ${DEFAULT_PUBLISHER_URL}
                         without a token or login the socket is anonymous (public channels only)
  --channel NAME         channel to subscribe to (repeatable); default: the client's own
                         channel client.<clientId> (needs --token or --email)
  --no-recover           no recovery from history: plain SocketCluster delivery, where a
                         reconnect's missed messages are counted as gaps (for comparisons)

Measuring
  --stats                print progress once a second on stderr (rate, total, latency p50/p99/max,
                         recovered, gaps) instead of the messages, and a JSON summary on stdout
                         at the end (with duplicates dropped, messages recovered, gaps)
  --clients N            load mode: N sockets (1-${MAX_CLIENTS}), each subscribing to the channels;
                         implies --stats, totals over every socket
  --duration SECONDS     stop after this long
  --count N              stop after N messages in total
  -h, --help             this text

Exits 0 when stopped (--duration, --count, SIGINT, SIGTERM), 1 when the login, the handshake or
every subscription is refused, 2 on bad options.`;

/** Strict integers only: parseInt would accept "10abc" and Number would accept "1e3" or "". */
function integer(flag: string, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`--${flag} must be a whole number ${range}, not "${text}"`);
  }
  return value;
}

/** `source` names where the text came from (a flag or an environment variable), for the message. */
function url(source: string, text: string, protocols: string[]): URL {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new UsageError(`${source} is not a URL: "${text}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new UsageError(`${source} must be a ${protocols.map((p) => `${p}//`).join(' or ')} URL, not "${text}"`);
  }
  return parsed;
}

/** A flag's value, else a non-empty environment variable, else the default; with the name to blame if it is bad. */
function setting(flag: string, given: string | undefined, env: NodeJS.ProcessEnv, variable: string, fallback: string): [string, string] {
  if (given !== undefined) return [`--${flag}`, given];
  const fromEnv = env[variable];
  return fromEnv ? [`$${variable}`, fromEnv] : [`--${flag}`, fallback];
}

/** Reads argv (without node and the script) and the environment; throws UsageError on bad input, returns 'help' for --help. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        email: { type: 'string' },
        password: { type: 'string' },
        publisher: { type: 'string' },
        channel: { type: 'string', multiple: true },
        stats: { type: 'boolean' },
        clients: { type: 'string' },
        duration: { type: 'string' },
        count: { type: 'string' },
        'no-recover': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    // parseArgs names the offending flag; its own hint about "--" only confuses here.
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  if (values.help) return 'help';

  const clients = values.clients === undefined ? 1 : integer('clients', values.clients, 1, MAX_CLIENTS);
  let durationMs: number | undefined;
  if (values.duration !== undefined) {
    const seconds = /^\d+(\.\d+)?$/.test(values.duration) ? Number(values.duration) : NaN;
    if (!(seconds > 0) || seconds > 7 * 86400) throw new UsageError(`--duration must be a number of seconds above 0 (at most a week), not "${values.duration}"`);
    durationMs = Math.round(seconds * 1000);
  }
  const count = values.count === undefined ? undefined : integer('count', values.count, 1, Number.MAX_SAFE_INTEGER);

  const workerUrl = url(...setting('url', values.url, env, 'SOCKETBRIDGE_WORKER_URL', DEFAULT_WORKER_URL), ['ws:', 'wss:']);

  let auth: Auth = { kind: 'anonymous' };
  const login = values.email !== undefined || values.password !== undefined;
  if (values.token !== undefined && login) throw new UsageError('give either --token or --email/--password, not both');
  if (values.token !== undefined) {
    if (!values.token) throw new UsageError('--token is empty');
    auth = { kind: 'token', token: values.token };
  } else if (login) {
    if (!values.email || !values.password) throw new UsageError('--email and --password go together: give both');
    const publisher = url(...setting('publisher', values.publisher, env, 'SOCKETBRIDGE_PUBLISHER_URL', DEFAULT_PUBLISHER_URL), ['http:', 'https:']);
    auth = { kind: 'login', email: values.email, password: values.password, publisher };
  } else if (values.publisher !== undefined) {
    throw new UsageError('--publisher is only used with --email and --password');
  }

  const channels = [...new Set(values.channel ?? [])];
  for (const channel of channels) {
    if (!CHANNEL_NAME.test(channel)) throw new UsageError(`--channel "${channel}" is not a channel name (1-200 of A-Z a-z 0-9 _ . : @ -)`);
  }
  if (channels.length === 0) {
    if (auth.kind === 'anonymous') {
      throw new UsageError('an anonymous socket has no channel of its own: give --channel (public channels only), --token or --email/--password');
    }
    if (auth.kind === 'token') {
      const sub = tokenSubject(auth.token);
      if (!sub) throw new UsageError('--token carries no readable sub claim to name its channel: give --channel');
      channels.push(`client.${sub}`);
    }
  }

  return {
    url: workerUrl,
    auth,
    channels,
    stats: values.stats === true || values.clients !== undefined,
    clients,
    durationMs,
    count,
    recover: values['no-recover'] !== true,
  };
}
