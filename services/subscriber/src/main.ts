#!/usr/bin/env node
import { LoginError, login } from './auth.js';
import { UsageError, parseOptions, usage, type Options } from './args.js';
import { SocketPool } from './sockets.js';
import { Stats, type Sample } from './stats.js';
import { Terminal } from './terminal.js';

const terminal = new Terminal();

function ms(value: number | undefined): string {
  return value === undefined ? '-' : `${value} ms`;
}

function progressLine(sample: Sample, pool: SocketPool, loadMode: boolean): string {
  const sockets = loadMode ? `sockets ${pool.connected()}/${pool.size} connected ${pool.subscribed()} subscribed | ` : '';
  const { recovered, gaps } = pool.stats();
  return `${sockets}${Math.round(sample.rate)} msg/s | total ${sample.total} | p50 ${ms(sample.p50Ms)} p99 ${ms(sample.p99Ms)} max ${ms(sample.maxMs)} | recovered ${recovered} gaps ${gaps}`;
}

/** The token and channels to subscribe with; a login failure is the user's to fix, so it ends the run (exit 1). */
async function credentials(options: Options): Promise<{ token: string | null; channels: string[] }> {
  const { auth } = options;
  if (auth.kind === 'anonymous') return { token: null, channels: options.channels };
  if (auth.kind === 'token') return { token: auth.token, channels: options.channels };
  const answer = await login(auth.publisher, auth.email, auth.password);
  terminal.status(`signed in as client ${answer.clientId}`);
  return { token: answer.token, channels: options.channels.length ? options.channels : [answer.channel] };
}

async function run(options: Options): Promise<number> {
  let access;
  try {
    access = await credentials(options);
  } catch (error) {
    if (error instanceof LoginError) {
      terminal.status(error.message);
      return 1;
    }
    throw error;
  }

  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  let done = false;
  const stop = (code: number) => {
    if (done) return;
    done = true;
    finish(code);
  };

  const stats = options.stats ? new Stats() : undefined;
  let received = 0;
  const pool = new SocketPool({
    url: options.url,
    token: access.token,
    channels: access.channels,
    recover: options.recover,
    events: {
      message(socket, channel, envelope) {
        // Messages already in flight when --count is reached are not part of the run.
        if (done) return;
        received++;
        if (stats) stats.record(socket, channel, envelope, Date.now());
        else process.stdout.write(`${JSON.stringify({ channel, envelope })}\n`);
        if (options.count !== undefined && received >= options.count) stop(0);
      },
      gap(_socket, { channel, since, reason }) {
        // With --stats the progress line and the summary count them.
        if (!stats && !done) terminal.status(`gap on ${channel} after offset ${since}: ${reason}; what was published in it is lost`);
      },
      status: (line) => terminal.status(line),
      fatal(error) {
        if (done) return;
        terminal.status(`handshake refused: ${error.name}: ${error.message}`);
        stop(1);
      },
      nothingSubscribed() {
        if (done) return;
        terminal.status('no channel could be subscribed');
        stop(1);
      },
    },
  });

  const onSignal = () => stop(0);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // `socketsub | head -5`: the reader leaving is a normal way to end a run, not a crash.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    stop(0);
  });
  const deadline = options.durationMs === undefined ? undefined : setTimeout(() => stop(0), options.durationMs);
  const ticker = stats ? setInterval(() => terminal.progress(progressLine(stats.sample(), pool, options.clients > 1)), 1000) : undefined;

  void pool.open(options.clients);
  const code = await finished;

  clearTimeout(deadline);
  clearInterval(ticker);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // The last progress line before closing, while it can still say how many sockets were connected.
  const last = stats && code === 0 ? progressLine(stats.sample(), pool, options.clients > 1) : undefined;
  pool.close();
  if (stats && last !== undefined) {
    terminal.progress(last);
    terminal.end();
    process.stdout.write(`${JSON.stringify(stats.summary(pool.stats()))}\n`);
  }
  return code;
}

async function main(): Promise<number> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`socketsub: ${error.message}\n\n${usage}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  return run(options);
}

// Exit explicitly once stdout has taken the last line: a socket's reconnect timer must not keep a finished run alive.
main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (error: unknown) => {
    process.stderr.write(`socketsub: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
