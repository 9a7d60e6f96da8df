import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, spawnCommand, waitFor, type ManagedProcess } from './processes.js';

const run = promisify(execFile);

// The scripts themselves: Debian's /usr/sbin wrappers switch to the rabbitmq user when run as root,
// which would take them away from this cluster's HOME and so its Erlang cookie.
const BIN = existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server') ? '/usr/lib/rabbitmq/bin' : '';
const bin = (name: string) => (BIN ? join(BIN, name) : name);

export interface RabbitNode {
  /** Erlang node name, such as sbtest-a-1a2b@localhost. */
  name: string;
  amqpPort: number;
  distPort: number;
  url: string;
  process: ManagedProcess;
}

/**
 * A RabbitMQ cluster of the tests' own from the installed rabbitmq-server (docs/testing.md): each
 * node with its own name, AMQP and distribution ports, data and log folders under one temp dir, one
 * Erlang cookie, and an epmd of its own on a free port, so neither the machine's node (rabbit@…,
 * 5672) nor its epmd (4369) is touched. Nodes are joined with `rabbitmqctl join_cluster`.
 * Starting takes a while (seconds per node): start one per test file and `stop()` it in afterAll.
 */
export class RabbitCluster {
  private constructor(
    readonly nodes: RabbitNode[],
    private readonly dir: string,
    private readonly epmdPort: number,
    private readonly epmd: ManagedProcess,
  ) {}

  static async start(options: { size?: number; prefix?: string; timeoutMs?: number } = {}): Promise<RabbitCluster> {
    const size = options.size ?? 3;
    const timeoutMs = options.timeoutMs ?? 60000;
    const dir = mkdtempSync(join(tmpdir(), 'socketbridge-rabbit-cluster-'));
    const home = join(dir, 'home');
    mkdirSync(home);
    writeFileSync(join(home, '.erlang.cookie'), randomBytes(20).toString('hex').toUpperCase(), { mode: 0o400 });
    // An empty env file: the machine's rabbitmq-env.conf names the machine's node.
    writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    const epmdPort = await freePort();
    const epmd = spawnCommand('epmd', 'epmd', ['-port', String(epmdPort), '-address', '127.0.0.1']);
    const cluster = new RabbitCluster([], dir, epmdPort, epmd);
    try {
      const tag = randomBytes(3).toString('hex');
      const letters = 'abcdefghij';
      await Promise.all(
        Array.from({ length: size }, async (_, i) => {
          const name = `${options.prefix ?? 'sbtest'}-${letters[i]}-${tag}@localhost`;
          const [amqpPort, distPort] = [await freePort(), await freePort()];
          cluster.nodes[i] = { name, amqpPort, distPort, url: `amqp://guest:guest@127.0.0.1:${amqpPort}`, process: cluster.spawnNode(name, amqpPort, distPort) };
        }),
      );
      await Promise.all(cluster.nodes.map((node) => cluster.waitStarted(node, timeoutMs)));
      const first = cluster.nodes[0]!;
      for (const node of cluster.nodes.slice(1)) {
        await cluster.ctl(node, ['stop_app']);
        await cluster.ctl(node, ['join_cluster', first.name]);
        await cluster.ctl(node, ['start_app']);
      }
      await waitFor(
        async () => (await cluster.runningNodes(first)).length === size,
        timeoutMs,
        `${size} RabbitMQ nodes to run as one cluster`,
        250,
      );
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** Every node's URL, comma-separated: SOCKETBRIDGE_RABBITMQ_URL for a cluster, in this order. */
  url(order: RabbitNode[] = this.nodes): string {
    return order.map((node) => node.url).join(',');
  }

  private env(): Record<string, string> {
    return {
      HOME: join(this.dir, 'home'),
      ERL_EPMD_PORT: String(this.epmdPort),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_CONF_ENV_FILE: join(this.dir, 'rabbitmq-env.conf'),
    };
  }

  private spawnNode(name: string, amqpPort: number, distPort: number): ManagedProcess {
    const short = name.split('@')[0]!;
    const base = join(this.dir, short);
    mkdirSync(join(base, 'log'), { recursive: true });
    const config = join(base, 'rabbitmq.conf');
    writeFileSync(config, [`listeners.tcp.1 = 127.0.0.1:${amqpPort}`, 'loopback_users = none', ''].join('\n'));
    return spawnCommand(short, bin('rabbitmq-server'), [], {
      group: true,
      env: {
        ...this.env(),
        RABBITMQ_NODENAME: name,
        RABBITMQ_NODE_PORT: String(amqpPort),
        RABBITMQ_DIST_PORT: String(distPort),
        RABBITMQ_CONFIG_FILE: config,
        RABBITMQ_ENABLED_PLUGINS_FILE: join(this.dir, 'enabled_plugins'),
        RABBITMQ_MNESIA_BASE: join(base, 'mnesia'),
        RABBITMQ_LOG_BASE: join(base, 'log'),
        // Logs on stdout, where the test waits for "Server startup complete".
        RABBITMQ_LOGS: '-',
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
      },
    });
  }

  private async waitStarted(node: RabbitNode, timeoutMs: number): Promise<void> {
    await waitFor(
      () => {
        if (!node.process.running) throw new Error(`RabbitMQ node ${node.name} exited:\n${node.process.tail(30)}`);
        return node.process.raw.some((line) => line.includes('Server startup complete'));
      },
      timeoutMs,
      `RabbitMQ node ${node.name} to start`,
      100,
    );
  }

  /** rabbitmqctl against one node, with this cluster's cookie and epmd; bounded in time. */
  async ctl(node: RabbitNode, args: string[], timeoutMs = 30000): Promise<string> {
    // The CLI is an Erlang node too: a distribution port of its own, free now.
    const cliPort = String(await freePort());
    const { stdout } = await run(bin('rabbitmqctl'), ['-n', node.name, ...args], {
      env: { ...process.env, ...this.env(), RABBITMQ_CTL_DIST_PORT_MIN: cliPort, RABBITMQ_CTL_DIST_PORT_MAX: cliPort },
      timeout: timeoutMs,
    });
    return stdout;
  }

  /** The nodes `node` sees running in its cluster. */
  async runningNodes(node: RabbitNode): Promise<string[]> {
    const status = JSON.parse(await this.ctl(node, ['cluster_status', '--formatter', 'json'])) as { running_nodes?: string[] };
    return status.running_nodes ?? [];
  }

  /** Tab-separated rows of `rabbitmqctl list_queues <fields>` asked of `node`. */
  async listQueues(node: RabbitNode, fields: string[]): Promise<string[][]> {
    const out = await this.ctl(node, ['list_queues', ...fields, '-q', '--no-table-headers']);
    return out.split('\n').filter((line) => line.trim()).map((line) => line.split('\t'));
  }

  /** SIGKILL a node: its Erlang VM and everything the start script spawned. */
  async kill(node: RabbitNode): Promise<void> {
    await node.process.stop('SIGKILL', 5000);
  }

  /** Kills every node and the cluster's epmd and deletes its folders. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.filter(Boolean).map((node) => node.process.stop('SIGKILL', 5000)));
    // The script may exit first: SIGKILL the group once more so no Erlang VM outlives it.
    for (const node of this.nodes.filter(Boolean)) node.process.kill('SIGKILL');
    await this.epmd.stop('SIGKILL', 5000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
