import { describe, expect, it } from 'vitest';
import { ConfigError, env, loadConfig } from '../../src/config.js';
import { parseRedisUrl, tlsHandshakeFailure } from '../../src/redis.js';

describe('SOCKETBRIDGE_REDIS_URL', () => {
  it('keeps redis:// and rediss:// as one node', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6379/2')).toEqual({ kind: 'single', url: 'redis://127.0.0.1:6379/2' });
    expect(parseRedisUrl('rediss://:pw@redis.example:6380')).toEqual({ kind: 'single', url: 'rediss://:pw@redis.example:6380' });
  });

  it('reads the Sentinel form: addresses (26379 by default), master name, db, credentials', () => {
    expect(parseRedisUrl('redis+sentinel://:s%40cret@10.0.0.1:26380,sentinel-b,[::1]:26381/my-master/3')).toEqual({
      kind: 'sentinel',
      tls: false,
      sentinels: [
        { host: '10.0.0.1', port: 26380 },
        { host: 'sentinel-b', port: 26379 },
        { host: '::1', port: 26381 },
      ],
      name: 'my-master',
      db: 3,
      password: 's@cret',
    });
    expect(parseRedisUrl('redis+sentinel://app:pw@s1:26379/m')).toMatchObject({ name: 'm', db: 0, username: 'app', password: 'pw' });
  });

  it("reads the sentinels' own credentials from the Sentinel URL's query, percent-decoded, and nothing else there", () => {
    expect(parseRedisUrl('redis+sentinel://:master-pw@s1,s2/m/1?sentinelPassword=s%26nt%2Bpw')).toEqual({
      kind: 'sentinel',
      tls: false,
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      name: 'm',
      db: 1,
      password: 'master-pw',
      sentinelPassword: 's&nt+pw',
    });
    expect(parseRedisUrl('rediss+sentinel://s1/m?sentinelUsername=watch&sentinelPassword=pw')).toMatchObject({ tls: true, sentinelUsername: 'watch', sentinelPassword: 'pw' });
    expect(parseRedisUrl('redis+sentinel://s1/m/?sentinelPassword=pw')).toMatchObject({ name: 'm', db: 0, sentinelPassword: 'pw' });
    expect(() => parseRedisUrl('redis+sentinel://s1/m?password=pw')).toThrow(/query takes sentinelUsername and sentinelPassword only, not password/);
  });

  it('reads the Cluster form: seed nodes (6379 by default), credentials, no db', () => {
    expect(parseRedisUrl('redis+cluster://:s%40cret@10.0.0.1:7000,node-b,[::1]:7002')).toEqual({
      kind: 'cluster',
      tls: false,
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'node-b', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      password: 's@cret',
    });
    expect(parseRedisUrl('redis+cluster://app:pw@n1:7000/')).toMatchObject({ kind: 'cluster', username: 'app', password: 'pw' });
  });

  it('reads rediss+sentinel:// and rediss+cluster:// as the same forms over TLS', () => {
    expect(parseRedisUrl('rediss+sentinel://app:pw@s1.example:26380,s2.example/mymaster/2')).toEqual({
      kind: 'sentinel',
      tls: true,
      sentinels: [
        { host: 's1.example', port: 26380 },
        { host: 's2.example', port: 26379 },
      ],
      name: 'mymaster',
      db: 2,
      username: 'app',
      password: 'pw',
    });
    expect(parseRedisUrl('rediss+cluster://:pw@clustercfg.my-cache.abc123.use1.cache.amazonaws.com:6379')).toEqual({
      kind: 'cluster',
      tls: true,
      nodes: [{ host: 'clustercfg.my-cache.abc123.use1.cache.amazonaws.com', port: 6379 }],
      password: 'pw',
    });
    // The TLS forms are checked as strictly as the plain ones.
    expect(() => parseRedisUrl('rediss+cluster://n1:7000/2')).toThrow(/database 0 only/);
    expect(() => parseRedisUrl('rediss+sentinel://s1:26379')).toThrow(/<masterName>/);
    // Only these spellings: a typo is refused, not read as a plain connection.
    for (const typo of ['redis+sentinels://s1/m', 'rediss-sentinel://s1/m', 'redisss+cluster://n1', 'REDISS+CLUSTER://n1', 'rediss+cluster:/n1']) {
      expect(() => parseRedisUrl(typo), typo).toThrow(/rediss\+sentinel:\/\/.*rediss\+cluster:\/\//);
    }
  });

  it('blames no certificate when nothing accepts the connection, nor for plain forms', async () => {
    // Port 1 on loopback: refused at once. Redis being away is the client's own error to report.
    expect(await tlsHandshakeFailure('rediss+cluster://127.0.0.1:1')).toBeUndefined();
    expect(await tlsHandshakeFailure('rediss+sentinel://127.0.0.1:1/m')).toBeUndefined();
    expect(await tlsHandshakeFailure('redis+cluster://127.0.0.1:1')).toBeUndefined();
    expect(await tlsHandshakeFailure('rediss://127.0.0.1:1')).toBeUndefined();
  });

  it('refuses what it cannot read, naming the accepted forms', () => {
    expect(() => parseRedisUrl('127.0.0.1:6379')).toThrow(/redis\+cluster:\/\//);
    expect(() => parseRedisUrl('redis+cluster://n1:7000/2')).toThrow(/database 0 only/);
    expect(() => parseRedisUrl('redis+cluster://n1:0,n2:7001')).toThrow(/Cluster node address "n1:0" is not host\[:port\]/);
    expect(() => parseRedisUrl('127.0.0.1:6379')).toThrow(/redis\+sentinel:\/\//);
    expect(() => parseRedisUrl('redis+sentinel://s1:26379')).toThrow(/<masterName>/);
    expect(() => parseRedisUrl('redis+sentinel://s1:26379/m/x')).toThrow(/<masterName>/);
    expect(() => parseRedisUrl('redis+sentinel://s1:99999/m')).toThrow(/not host\[:port\]/);
  });

  it('stops the start through the config, without printing the password', () => {
    const shape = { SOCKETBRIDGE_REDIS_URL: env.redisUrl('redis://127.0.0.1:6379') };
    expect(loadConfig(shape, {})).toEqual({ SOCKETBRIDGE_REDIS_URL: 'redis://127.0.0.1:6379' });
    expect(() => loadConfig(shape, { SOCKETBRIDGE_REDIS_URL: 'redis+sentinel://:hunter2@s1:26379' })).toThrow(ConfigError);
    expect(() => loadConfig(shape, { SOCKETBRIDGE_REDIS_URL: 'redis+sentinel://:hunter2@s1:26379' })).toThrow(/SOCKETBRIDGE_REDIS_URL: .*\(got "redis\+sentinel:\/\/:\*\*\*@s1:26379"\)/);
    expect(() => loadConfig(shape, { SOCKETBRIDGE_REDIS_URL: 'redis+sentinel://:hunter2@s1:26379' })).not.toThrow(/hunter2/);
    // The sentinels' password in the query is as secret as the master's.
    const withQuery = 'redis+sentinel://:hunter2@s1:26379/m?sentinelPassword=swordfish&other=1';
    expect(() => loadConfig(shape, { SOCKETBRIDGE_REDIS_URL: withQuery })).toThrow(/\(got "redis\+sentinel:\/\/:\*\*\*@s1:26379\/m\?sentinelPassword=\*\*\*&other=1"\)/);
    expect(() => loadConfig(shape, { SOCKETBRIDGE_REDIS_URL: withQuery })).not.toThrow(/swordfish|hunter2/);
  });
});
