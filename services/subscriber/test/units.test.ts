import { describe, expect, it } from 'vitest';
import { UsageError, parseOptions, type Options } from '../src/args.js';
import { tokenSubject } from '../src/auth.js';
import { LatencyHistogram } from '../src/percentile.js';
import { clientOptions } from '../src/sockets.js';
import { Stats } from '../src/stats.js';

/** A JWT-shaped string with this payload; the signature is never checked here. */
function unsignedToken(payload: object): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(payload)}.c2lnbmF0dXJl`;
}

function parse(args: string[], env: NodeJS.ProcessEnv = {}): Options {
  const options = parseOptions(args, env);
  if (options === 'help') throw new Error('unexpected help');
  return options;
}

describe('LatencyHistogram', () => {
  it('gives nearest-rank percentiles and the maximum', () => {
    const histogram = new LatencyHistogram();
    expect(histogram.percentile(50)).toBeUndefined();
    for (let ms = 1; ms <= 100; ms++) histogram.record(ms);
    expect(histogram.percentile(50)).toBe(50);
    expect(histogram.percentile(99)).toBe(99);
    expect(histogram.percentile(100)).toBe(100);
    expect(histogram.percentile(0)).toBe(1);
    expect(histogram.max).toBe(100);
    expect(histogram.count).toBe(100);
  });

  it('weights repeated values, rounds to whole ms and clamps clock skew to 0', () => {
    const histogram = new LatencyHistogram();
    for (let i = 0; i < 98; i++) histogram.record(2.4);
    histogram.record(-3);
    histogram.record(500);
    expect(histogram.percentile(50)).toBe(2);
    expect(histogram.percentile(1)).toBe(0);
    expect(histogram.percentile(99)).toBe(2);
    expect(histogram.percentile(99.5)).toBe(500);
    histogram.reset();
    expect(histogram.count).toBe(0);
    expect(histogram.percentile(50)).toBeUndefined();
  });
});

describe('Stats', () => {
  const envelope = (offset: string, ts: number) => ({ id: offset, offset, ts, data: {} });

  it('counts messages, latencies and duplicates per socket and channel', () => {
    const stats = new Stats(1000);
    stats.record(0, 'a', envelope('1-0', 1000), 1010);
    stats.record(0, 'a', envelope('2-0', 1000), 1020);
    // The same offset on another socket or another channel is not a duplicate; on the same socket and channel it is.
    stats.record(1, 'a', envelope('1-0', 1000), 1030);
    stats.record(0, 'b', envelope('1-0', 1000), 1040);
    stats.record(0, 'a', envelope('1-0', 1000), 1050);
    // Not an envelope: counted, without a latency.
    stats.record(0, 'a', { hello: true }, 1060);
    expect(stats.summary()).toEqual({ received: 6, rate: 100, p50Ms: 30, p99Ms: 50, maxMs: 50, duplicates: 1, recovered: 0, gaps: 0 });
  });

  it('counts an offset at or below the last one as a duplicate, comparing offsets as numbers', () => {
    const stats = new Stats(0);
    stats.record(0, 'a', envelope('999-9', 0), 1);
    stats.record(0, 'a', envelope('1000-0', 0), 1);
    stats.record(0, 'a', envelope('999-10', 0), 1);
    stats.record(0, 'a', envelope('1000-0', 0), 1);
    stats.record(0, 'a', envelope('1000-1', 0), 1);
    expect(stats.summary()).toMatchObject({ received: 5, duplicates: 2 });
  });

  it("adds the client library's counts to the summary: its dropped duplicates to those seen here", () => {
    const stats = new Stats(0);
    stats.record(0, 'a', envelope('1-0', 0), 1);
    stats.record(0, 'a', envelope('1-0', 0), 1);
    expect(stats.summary({ recovered: 7, duplicates: 3, gaps: 2 })).toMatchObject({ received: 2, duplicates: 4, recovered: 7, gaps: 2 });
  });

  it('samples the last window and starts the next one', () => {
    const stats = new Stats(0);
    for (let i = 0; i < 10; i++) stats.record(0, 'a', envelope(`${i}-0`, 0), 5 + i);
    expect(stats.sample(500)).toEqual({ rate: 20, total: 10, p50Ms: 9, p99Ms: 14, maxMs: 14 });
    expect(stats.sample(1500)).toEqual({ rate: 0, total: 10, p50Ms: undefined, p99Ms: undefined, maxMs: undefined });
    expect(stats.summary()).toMatchObject({ received: 10, p50Ms: 9, maxMs: 14 });
  });

  it('summarizes an empty run with nulls', () => {
    expect(new Stats().summary()).toEqual({ received: 0, rate: 0, p50Ms: null, p99Ms: null, maxMs: null, duplicates: 0, recovered: 0, gaps: 0 });
  });
});

describe('tokens', () => {
  it('reads the sub claim without verifying, and nothing from what is not a JWT', () => {
    expect(tokenSubject(unsignedToken({ sub: 'abc123', channels: ['client.abc123'] }))).toBe('abc123');
    expect(tokenSubject(unsignedToken({ channels: [] }))).toBeUndefined();
    expect(tokenSubject('not-a-jwt')).toBeUndefined();
    expect(tokenSubject('a.!!!.c')).toBeUndefined();
  });
});

describe('parseOptions', () => {
  it('takes defaults from the environment, flags over both', () => {
    const token = unsignedToken({ sub: 'c1' });
    expect(parse(['--token', token])).toMatchObject({
      url: new URL('ws://127.0.0.1:8000'),
      auth: { kind: 'token', token },
      channels: ['client.c1'],
      stats: false,
      clients: 1,
      durationMs: undefined,
      count: undefined,
      recover: true,
    });
    expect(parse(['--channel', 'x'], { SOCKETBRIDGE_WORKER_URL: 'ws://worker:9000' }).url.href).toBe('ws://worker:9000/');
    expect(parse(['--channel', 'x', '--url', 'wss://w.example/ws'], { SOCKETBRIDGE_WORKER_URL: 'ws://worker:9000' }).url.href).toBe('wss://w.example/ws');
    const login = parse(['--email', 'a@b.test', '--password', 'pw'], { SOCKETBRIDGE_PUBLISHER_URL: 'http://pub:3100' });
    expect(login.auth).toEqual({ kind: 'login', email: 'a@b.test', password: 'pw', publisher: new URL('http://pub:3100') });
    // The login's answer names the channel later.
    expect(login.channels).toEqual([]);
  });

  it('reads the measuring flags; --clients implies --stats', () => {
    expect(parse(['--channel', 'a', '--channel', 'b', '--channel', 'a', '--stats', '--count', '25', '--duration', '1.5'])).toMatchObject({
      channels: ['a', 'b'],
      stats: true,
      count: 25,
      durationMs: 1500,
    });
    expect(parse(['--channel', 'a', '--clients', '10000'])).toMatchObject({ clients: 10000, stats: true });
    expect(parseOptions(['--help'], {})).toBe('help');
  });

  it('--no-recover turns recovery off; it is on without it', () => {
    expect(parse(['--channel', 'a']).recover).toBe(true);
    expect(parse(['--channel', 'a', '--no-recover']).recover).toBe(false);
    expect(parse(['--channel', 'a', '--no-recover', '--clients', '3'])).toMatchObject({ recover: false, clients: 3, stats: true });
  });

  it.each([
    [['--bogus'], /Unknown option '--bogus'/],
    [['--channel', 'a', '--recover'], /Unknown option '--recover'/],
    [['--channel', 'a', '--no-recover=yes'], /Option '--no-recover' does not take an argument/],
    [['extra'], /Unexpected argument 'extra'/],
    [['--channel', 'a', '--clients', '0'], /--clients must be a whole number from 1 to 10000, not "0"/],
    [['--channel', 'a', '--clients', '10001'], /--clients must be/],
    [['--channel', 'a', '--clients', '2.5'], /--clients must be/],
    [['--channel', 'a', '--count', '1e3'], /--count must be a whole number of at least 1/],
    [['--channel', 'a', '--duration', '0'], /--duration must be a number of seconds above 0/],
    [['--channel', 'a', '--duration', 'soon'], /--duration must be/],
    [['--channel', 'a', '--url', 'http://127.0.0.1:8000'], /--url must be a ws:\/\/ or wss:\/\/ URL/],
    [['--channel', 'a', '--url', 'nonsense'], /--url is not a URL/],
    [['--email', 'a@b.test', '--password', 'x', '--publisher', 'ftp://p'], /--publisher must be a http:\/\/ or https:\/\/ URL/],
    [['--email', 'a@b.test'], /--email and --password go together/],
    [['--token', 't', '--email', 'a@b.test', '--password', 'x'], /either --token or --email\/--password/],
    [['--channel', 'a', '--publisher', 'http://p'], /--publisher is only used with --email/],
    [['--channel', 'no spaces'], /is not a channel name/],
    [[], /anonymous socket has no channel of its own/],
    [['--token', 'not-a-jwt'], /no readable sub claim/],
  ])('refuses %j', (args, message) => {
    expect(() => parseOptions(args, {})).toThrow(UsageError);
    expect(() => parseOptions(args, {})).toThrow(message);
  });

  it('names the environment variable when its value is bad', () => {
    expect(() => parseOptions(['--channel', 'a'], { SOCKETBRIDGE_WORKER_URL: 'nope' })).toThrow(/\$SOCKETBRIDGE_WORKER_URL is not a URL/);
  });
});

describe('clientOptions', () => {
  it('splits the worker URL for the client library and passes the token and --no-recover', () => {
    expect(clientOptions(new URL('ws://127.0.0.1:8000'), 'jwt', true)).toEqual({ hostname: '127.0.0.1', port: 8000, secure: false, token: 'jwt', recover: true });
    expect(clientOptions(new URL('wss://w.example/ws/'), null, false)).toEqual({ hostname: 'w.example', port: 443, secure: true, path: '/ws/', recover: false });
    expect(clientOptions(new URL('ws://[::1]'), null, true)).toEqual({ hostname: '::1', port: 80, secure: false, recover: true });
  });
});
