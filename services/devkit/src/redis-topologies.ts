import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, spawnCommand, waitFor, type ManagedProcess } from './processes.js';
import type { TestCa } from './test-ca.js';

/**
 * Redis topologies of a test's or a chaos run's own (docs/scaling.md, docs/testing.md): Debian's
 * redis-server and redis-sentinel on free ports, data in a temp folder, nothing persisted, so the
 * machine's Redis is never touched. Each starts in seconds; `stop()` kills every process it started.
 *
 * With `tls` (a TestCa) every server, sentinel and cluster node listens on TLS only (`port 0`), with
 * the CA's server certificate, and speaks TLS to its peers too (replication, Sentinel's links, the
 * cluster bus). Clients present no certificate (`tls-auth-clients no`), as with managed Redis:
 * SocketBridge verifies the server, the server authenticates clients by password (docs/configuration.md).
 */

/** redis.conf directives (as `name value` pairs) that make a server or sentinel listen on TLS only. */
function tlsDirectives(ca: TestCa, port: number): Array<[string, string]> {
  return [
    ['port', '0'],
    ['tls-port', String(port)],
    ['tls-cert-file', ca.certFile],
    ['tls-key-file', ca.keyFile],
    ['tls-ca-cert-file', ca.caFile],
    ['tls-auth-clients', 'no'],
    // A replica to its master, and a sentinel to the servers and the other sentinels, over TLS too.
    ['tls-replication', 'yes'],
  ];
}

function redisServer(name: string, dir: string, port: number, tls: TestCa | undefined, extra: string[] = []): ManagedProcess {
  const listen = tls ? tlsDirectives(tls, port).flatMap(([key, value]) => [`--${key}`, value]) : ['--port', String(port)];
  // A replica's first sync at once, not after Redis' default 5 s wait for more replicas to share it.
  return spawnCommand(name, 'redis-server', [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0', '--dir', dir, ...extra]);
}

async function waitReady(node: ManagedProcess, what: string): Promise<void> {
  await waitFor(
    () => {
      if (!node.running) throw new Error(`${node.name} exited:\n${node.tail(20)}`);
      return node.raw.some((line) => line.includes('Ready to accept connections'));
    },
    10000,
    what,
  );
}

/**
 * A connection for a harness's own questions; a node not up yet or killed makes commands fail, which
 * callers read as "not yet". With TLS it checks the certificate against the name localhost, which
 * every TestCa certificate carries (a test may leave out the IP address, to see the services refuse it).
 */
function probeConnection(port: number, tls: TestCa | undefined, password?: string): Redis {
  const redis = new Redis({ host: '127.0.0.1', port, password, lazyConnect: true, retryStrategy: () => 100, maxRetriesPerRequest: 1, ...(tls ? { tls: { ca: tls.ca, servername: 'localhost' } } : {}) });
  redis.on('error', () => undefined);
  return redis;
}

/** One master, one replica, three sentinels (quorum 2), failing over within seconds of a master's death. */
export class RedisSentinelSet {
  private constructor(
    readonly masterName: string,
    private readonly dir: string,
    readonly masterPort: number,
    readonly replicaPort: number,
    readonly master: ManagedProcess,
    readonly sentinelPorts: number[],
    /** One connection per sentinel. */
    readonly probes: Redis[],
    /** Every server and sentinel started, for stop(). */
    private readonly processes: ManagedProcess[],
    /** The CA whose certificate every server and sentinel presents; unset: plain TCP. */
    readonly tls: TestCa | undefined,
    /** The master's and replica's password (requirepass), and the sentinels' own: unset, none. */
    readonly passwords: { password?: string; sentinelPassword?: string },
  ) {}

  /**
   * `password`: the servers require it (and the replica and sentinels use it on the master);
   * `sentinelPassword`: the sentinels require one of their own (and use it on each other), as
   * Bitnami's chart sets up Sentinel with auth.
   */
  static async start(options: { masterName?: string; tls?: TestCa; password?: string; sentinelPassword?: string } = {}): Promise<RedisSentinelSet> {
    const masterName = options.masterName ?? 'sbtest';
    const tls = options.tls;
    const { password, sentinelPassword } = options;
    const dir = mkdtempSync(join(tmpdir(), 'socketbridge-sentinel-'));
    const [masterPort, replicaPort] = [await freePort(), await freePort()];
    // Both servers require the password and the replica authenticates with it (either may become master).
    const auth = password ? ['--requirepass', password, '--masterauth', password] : [];
    const master = redisServer('redis-master', dir, masterPort, tls, auth);
    const set = new RedisSentinelSet(masterName, dir, masterPort, replicaPort, master, [], [], [master], tls, { password, sentinelPassword });
    try {
      await waitReady(master, 'the master to start');
      const replica = redisServer('redis-replica', dir, replicaPort, tls, [...auth, '--replicaof', '127.0.0.1', String(masterPort)]);
      set.processes.push(replica);
      await waitFor(() => replica.raw.some((line) => line.includes('MASTER <-> REPLICA sync: Finished')), 15000, 'the replica to sync');
      for (let i = 0; i < 3; i++) {
        const port = await freePort();
        set.sentinelPorts.push(port);
        // Sentinel rewrites its config file (it records the replica, the other sentinels, the new master): one file each.
        const file = join(dir, `sentinel-${i}.conf`);
        writeFileSync(
          file,
          [
            ...(tls ? tlsDirectives(tls, port).map(([key, value]) => `${key} ${value}`) : [`port ${port}`]),
            'bind 127.0.0.1',
            `dir ${dir}`,
            `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
            // Low, so a killed master is found down and replaced within seconds.
            `sentinel down-after-milliseconds ${masterName} 1000`,
            `sentinel failover-timeout ${masterName} 3000`,
            `sentinel parallel-syncs ${masterName} 1`,
            // Quoted: a password may hold spaces (redis.conf reads "…" with \" and \\ escapes, as JSON writes them).
            ...(password ? [`sentinel auth-pass ${masterName} ${JSON.stringify(password)}`] : []),
            ...(sentinelPassword ? [`requirepass ${JSON.stringify(sentinelPassword)}`, `sentinel sentinel-pass ${JSON.stringify(sentinelPassword)}`] : []),
            '',
          ].join('\n'),
        );
        set.processes.push(spawnCommand(`sentinel-${i}`, 'redis-sentinel', [file]));
        set.probes.push(probeConnection(port, tls, sentinelPassword));
      }
      // Every sentinel must know the replica and the other two before a failover can be voted and carried out.
      await waitFor(
        async () => {
          for (const probe of set.probes) {
            const info = (await probe.call('SENTINEL', 'master', masterName).catch(() => null)) as string[] | null;
            if (!info) return false;
            const field = (name: string) => Number(info[info.indexOf(name) + 1]);
            if (field('num-slaves') < 1 || field('num-other-sentinels') < 2) return false;
          }
          return true;
        },
        30000,
        'three sentinels to see the replica and each other',
        100,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${set.processes.map((p) => `--- ${p.name}\n${p.raw.slice(-8).join('\n')}`).join('\n')}`);
      });
      return set;
    } catch (error) {
      await set.stop();
      throw error;
    }
  }

  /** SOCKETBRIDGE_REDIS_URL for this set: every sentinel and the master name (rediss+sentinel:// with TLS), with the passwords it was started with. */
  url(): string {
    const { password, sentinelPassword } = this.passwords;
    const auth = password ? `:${encodeURIComponent(password)}@` : '';
    const query = sentinelPassword ? `?sentinelPassword=${encodeURIComponent(sentinelPassword)}` : '';
    return `${this.tls ? 'rediss' : 'redis'}+sentinel://${auth}${this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${this.masterName}${query}`;
  }

  /** What one sentinel holds as the master's address now, `host:port` ('' if it does not answer). */
  async masterAddress(probe: Redis): Promise<string> {
    const reply = (await probe.call('SENTINEL', 'get-master-addr-by-name', this.masterName).catch(() => null)) as [string, string] | null;
    return reply ? `${reply[0]}:${reply[1]}` : '';
  }

  /** SIGKILLs the master and waits until every sentinel names the replica as master; resolves to the ms that took. */
  async killPrimary(timeoutMs = 30000): Promise<number> {
    await this.master.stop('SIGKILL');
    const promoted = `127.0.0.1:${this.replicaPort}`;
    return waitFor(async () => (await Promise.all(this.probes.map((p) => this.masterAddress(p)))).every((a) => a === promoted), timeoutMs, 'Sentinel to promote the replica', 100);
  }

  /** Kills the servers and sentinels this set started and deletes its folder. */
  async stop(): Promise<void> {
    for (const probe of this.probes) probe.disconnect();
    await Promise.all(this.processes.map((p) => p.stop('SIGKILL', 5000)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Three primaries with a replica each, made a Redis Cluster by `redis-cli --cluster create`. */
export class RedisClusterSet {
  private readonly probes = new Map<number, Redis>();

  private constructor(
    private readonly dir: string,
    /** Node processes by port, in creation order (redis-cli makes the first three the primaries). */
    readonly nodes: Map<number, ManagedProcess>,
    /** The CA whose certificate every node presents; unset: plain TCP. */
    readonly tls: TestCa | undefined,
  ) {}

  static async start(options: { tls?: TestCa } = {}): Promise<RedisClusterSet> {
    const tls = options.tls;
    const dir = mkdtempSync(join(tmpdir(), 'socketbridge-rcluster-'));
    const set = new RedisClusterSet(dir, new Map(), tls);
    try {
      const ports: number[] = [];
      for (let i = 0; i < 6; i++) ports.push(await freePort());
      for (const port of ports) {
        set.nodes.set(
          port,
          redisServer(`redis-${port}`, dir, port, tls, [
            '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
            // Low, so a killed primary is declared failed and its replica promoted within seconds.
            '--cluster-node-timeout', '1000',
            // The cluster bus over TLS as well; the nodes then announce their TLS port in CLUSTER SLOTS and NODES.
            ...(tls ? ['--tls-cluster', 'yes'] : []),
          ]),
        );
      }
      for (const node of set.nodes.values()) await waitReady(node, 'a cluster node to start');
      const cliTls = tls ? ['--tls', '--cacert', tls.caFile] : [];
      const create = spawnCommand('redis-cli-create', 'redis-cli', [...cliTls, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes']);
      const { code } = await create.exited;
      if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${code}:\n${create.raw.join('\n')}`);
      await waitFor(async () => {
        for (const port of ports) {
          const info = (await set.probe(port).call('CLUSTER', 'INFO').catch(() => '')) as string;
          if (!info.includes('cluster_state:ok')) return false;
        }
        return true;
      }, 30000, 'every node to report cluster_state:ok', 200);
      // Replicas must have synced before a failover can promote one: a replica that never held its
      // primary's data counts as too stale (cluster-replica-validity-factor) and is never promoted,
      // so a primary killed before then stays failed (seen in CI). Listed as a slave is not enough.
      await waitFor(
        async () => {
          let synced = 0;
          for (const port of ports) {
            const info = (await set.probe(port).call('INFO', 'replication').catch(() => '')) as string;
            if (info.includes('role:slave') && info.includes('master_link_status:up') && !info.includes('master_sync_in_progress:1')) synced++;
          }
          return synced === 3;
        },
        30000,
        'three replicas in sync with their primaries',
        200,
      );
      return set;
    } catch (error) {
      await set.stop();
      throw error;
    }
  }

  get ports(): number[] {
    return [...this.nodes.keys()];
  }

  /** SOCKETBRIDGE_REDIS_URL for this cluster: three seed nodes, as an operator would list them (rediss+cluster:// with TLS). */
  url(): string {
    return `${this.tls ? 'rediss' : 'redis'}+cluster://${this.ports.slice(0, 3).map((p) => `127.0.0.1:${p}`).join(',')}`;
  }

  /** One connection per node (not a Cluster client: it follows no redirection), for CLUSTER questions. */
  probe(port: number): Redis {
    let redis = this.probes.get(port);
    if (!redis) {
      redis = probeConnection(port, this.tls);
      this.probes.set(port, redis);
    }
    return redis;
  }

  /** Slot ranges and the port of the primary serving each, as the node on `port` (default: a live one) sees them. */
  async slotOwners(port = this.livePort()): Promise<Array<{ from: number; to: number; port: number }>> {
    const slots = (await this.probe(port).call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, string]]>;
    return slots.map(([from, to, primary]) => ({ from, to, port: Number(primary[1]) }));
  }

  /** The port of the primary serving `key`'s slot, as the node on `port` sees it. */
  async primaryOf(key: string, port = this.livePort()): Promise<number> {
    const slot = (await this.probe(port).call('CLUSTER', 'KEYSLOT', key)) as number;
    return (await this.slotOwners(port)).find((range) => slot >= range.from && slot <= range.to)!.port;
  }

  /**
   * SIGKILLs the primary serving `key` and waits until a surviving node reports the cluster ok with
   * another node serving the key's slot (its replica, promoted); resolves to the ms that took.
   */
  async killPrimary(key: string, timeoutMs = 30000): Promise<{ port: number; promotedAfterMs: number }> {
    const victim = await this.primaryOf(key);
    await this.nodes.get(victim)!.stop('SIGKILL');
    const witness = this.livePort();
    const promotedAfterMs = await waitFor(
      async () => {
        const info = (await this.probe(witness).call('CLUSTER', 'INFO').catch(() => '')) as string;
        if (!info.includes('cluster_state:ok')) return false;
        return (await this.primaryOf(key, witness).catch(() => victim)) !== victim;
      },
      timeoutMs,
      'the replica to be promoted',
      100,
    ).catch(async (error: Error) => {
      const view = (await this.probe(witness).call('CLUSTER', 'NODES').catch((e: Error) => e.message)) as string;
      const logs = [...this.nodes.entries()].filter(([port]) => port !== victim).map(([port, node]) => `--- ${port}\n${node.raw.slice(-15).join('\n')}`);
      throw new Error(`${error.message}\n${view}\n${logs.join('\n')}`);
    });
    return { port: victim, promotedAfterMs };
  }

  /** Kills every node and deletes the cluster's folder. */
  async stop(): Promise<void> {
    for (const redis of this.probes.values()) redis.disconnect();
    await Promise.all([...this.nodes.values()].map((node) => node.stop('SIGKILL', 5000)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private livePort(): number {
    const port = [...this.nodes.entries()].find(([, node]) => node.running)?.[0];
    if (port === undefined) throw new Error('no Redis Cluster node is running');
    return port;
  }
}
