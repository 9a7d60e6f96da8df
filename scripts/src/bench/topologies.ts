// The `topologies` regime of `npm run bench`: what a RabbitMQ cluster, a quorum queue, a stream,
// Redis Sentinel or a Redis Cluster costs per message. Each variant is a SocketBridge cluster of its
// own on RabbitMQ and Redis of the run's own (devkit's RabbitCluster, RedisSentinelSet,
// RedisClusterSet), measured in steady rounds that alternate with a reference SocketBridge cluster
// on the machine's single RabbitMQ node (classic queue) and single Redis, in the same run: ratios of
// CPU per message by role and of p99, against the reference.
import { QUEUE_TYPES, connectRedisOnce, registryKeys, type QueueType } from '@socketbridge/common';
import { RabbitCluster, RedisClusterSet, RedisSentinelSet, rabbitmqUrl, redisUrl } from '@socketbridge/devkit';
import { infrastructure, infrastructureOn } from './proc.js';
import { median, pinSide, progress, removeTopology, round2, startSocketBridge, type Side } from './sides.js';
import { runRegime, type Regime, type RegimeResult, type SteadyOptions, type SteadyRound } from './steady.js';

export interface Topology {
  /** As given on the command line, such as rabbitmq-cluster+quorum. */
  name: string;
  rabbitmq: 'single' | 'cluster';
  queueType: QueueType;
  redis: 'single' | 'sentinel' | 'cluster';
}

const TERMS = ['rabbitmq-cluster', ...QUEUE_TYPES, 'sentinel', 'redis-cluster'] as const;

/** `--topologies`: comma-separated variants, each terms joined by `+` (unnamed parts: single node, classic). */
export function parseTopologies(text: string): Topology[] {
  return text
    .split(',')
    .filter(Boolean)
    .map((name) => {
      const topology: Topology = { name, rabbitmq: 'single', queueType: 'classic', redis: 'single' };
      for (const term of name.split('+')) {
        if (!(TERMS as readonly string[]).includes(term)) throw new Error(`--topologies: ${term} is not one of ${TERMS.join(', ')} (joined by +)`);
        if (term === 'rabbitmq-cluster') topology.rabbitmq = 'cluster';
        else if (term === 'sentinel') topology.redis = 'sentinel';
        else if (term === 'redis-cluster') topology.redis = 'cluster';
        else topology.queueType = term as QueueType;
      }
      return topology;
    });
}

/** The run's own RabbitMQ cluster and Redis sets: each started when a variant needs it, stopped when the next does not. */
class Infrastructure {
  rabbit: RabbitCluster | undefined;
  sentinel: RedisSentinelSet | undefined;
  redisCluster: RedisClusterSet | undefined;

  async use(topology: Topology): Promise<void> {
    if (topology.rabbitmq !== 'cluster' && this.rabbit) await this.rabbit.stop().finally(() => (this.rabbit = undefined));
    if (topology.redis !== 'sentinel' && this.sentinel) await this.sentinel.stop().finally(() => (this.sentinel = undefined));
    if (topology.redis !== 'cluster' && this.redisCluster) await this.redisCluster.stop().finally(() => (this.redisCluster = undefined));
    if (topology.rabbitmq === 'cluster' && !this.rabbit) {
      progress('topologies: starting a 3-node RabbitMQ cluster');
      this.rabbit = await RabbitCluster.start({ prefix: 'sbbench', timeoutMs: 120000 });
    }
    if (topology.redis === 'sentinel' && !this.sentinel) {
      progress('topologies: starting Redis master, replica and three sentinels');
      this.sentinel = await RedisSentinelSet.start({ masterName: 'sbbench' });
    }
    if (topology.redis === 'cluster' && !this.redisCluster) {
      progress('topologies: starting a 6-node Redis Cluster');
      this.redisCluster = await RedisClusterSet.start();
    }
  }

  /** SOCKETBRIDGE_RABBITMQ_URL and SOCKETBRIDGE_REDIS_URL for the topology, and the ports of every process it runs on. */
  urls(topology: Topology): { rabbitmq: string; redis: string; rabbitmqPorts: number[]; redisPorts: number[] } {
    const rabbit = topology.rabbitmq === 'cluster' ? this.rabbit! : undefined;
    const port = (url: string, fallback: number) => Number(new URL(url).port || fallback);
    const redis =
      topology.redis === 'sentinel'
        ? { url: this.sentinel!.url(), ports: [this.sentinel!.masterPort, this.sentinel!.replicaPort, ...this.sentinel!.sentinelPorts] }
        : topology.redis === 'cluster'
          ? { url: this.redisCluster!.url(), ports: this.redisCluster!.ports }
          : { url: redisUrl(), ports: [port(redisUrl(), 6379)] };
    return {
      rabbitmq: rabbit ? rabbit.url() : rabbitmqUrl(),
      redis: redis.url,
      rabbitmqPorts: rabbit ? rabbit.nodes.map((node) => node.amqpPort) : [port(rabbitmqUrl().split(',')[0]!, 5672)],
      redisPorts: redis.ports,
    };
  }

  async stop(): Promise<void> {
    await this.rabbit?.stop();
    await this.sentinel?.stop();
    await this.redisCluster?.stop();
  }
}

export interface TopologyResult {
  topology: Topology;
  regimes: RegimeResult[];
}

const REFERENCE = 'reference (RabbitMQ single node, classic queue; Redis single node)';

/**
 * Both sides' producer keeps up to this many messages unconfirmed in paced rounds: a quorum queue
 * or stream confirms only after a majority wrote the message, and a producer waiting for that every
 * message or two caps the rate near 200 msg/s (what the first run here measured), below the rates asked.
 */
const CONFIRM_WINDOW = 1000;

/** Every variant against the reference, through each of `plans` (steady rounds, alternating the two). */
export async function runTopologies(variants: Topology[], plans: Regime[], steady: SteadyOptions, cpu: number | undefined, sbEnv: Record<string, string>): Promise<TopologyResult[]> {
  const infra = new Infrastructure();
  const results: TopologyResult[] = [];
  const reference = await startSocketBridge(2, sbEnv, REFERENCE);
  reference.infrastructure = () => infrastructure(rabbitmqUrl(), redisUrl());
  reference.confirmWindow = CONFIRM_WINDOW;
  try {
    if (cpu !== undefined) pinSide(reference, cpu);
    for (const topology of variants) {
      await infra.use(topology);
      const urls = infra.urls(topology);
      progress(`topologies: starting SocketBridge on ${topology.name}`);
      const variant: Side = await startSocketBridge(
        2,
        { ...sbEnv, SOCKETBRIDGE_RABBITMQ_URL: urls.rabbitmq, SOCKETBRIDGE_REDIS_URL: urls.redis, SOCKETBRIDGE_QUEUE_TYPE: topology.queueType },
        topology.name,
      );
      // The producer publishes to the node the publisher connects to first (and where it declared the queue).
      variant.amqpUrl = urls.rabbitmq.split(',')[0]!;
      variant.infrastructure = () => infrastructureOn({ rabbitmq: urls.rabbitmqPorts, redis: urls.redisPorts });
      variant.confirmWindow = CONFIRM_WINDOW;
      try {
        if (cpu !== undefined) pinSide(variant, cpu);
        const regimes: RegimeResult[] = [];
        for (const plan of plans) regimes.push(await runRegime([reference, variant], plan, steady));
        results.push({ topology, regimes });
      } finally {
        await variant.stop();
        await removeTopology(variant.exchange, variant.amqpUrl);
        // A stream's publisher stored its resume offset in Redis (the machine's, for a stream on single Redis).
        if (topology.queueType === 'stream') {
          const redis = await connectRedisOnce(urls.redis, 'the variant Redis');
          await redis.hdel(registryKeys.streamOffsets, `${variant.exchange}.q`).finally(() => redis.disconnect());
        }
      }
    }
  } finally {
    progress('');
    await reference.stop();
    await removeTopology(reference.exchange);
    await infra.stop();
  }
  return results;
}

/** Each role's CPU per message (µs) over rounds, weighted by their messages. */
function byRole(rounds: SteadyRound[]): Record<string, number> {
  const total: Record<string, number> = {};
  let messages = 0;
  for (const r of rounds) {
    messages += r.messages;
    for (const [role, us] of Object.entries(r.cpuPerMessageUsByRole)) total[role] = (total[role] ?? 0) + us * r.messages;
  }
  return Object.fromEntries(Object.entries(total).map(([role, us]) => [role, Math.round(us / messages)]));
}

/** Per variant, regime and rate: the variant's CPU per message and p99 against the reference's rounds of the same run. */
export function topologySummary(result: TopologyResult) {
  return result.regimes.flatMap((regime) => {
    const [reference, variant] = Object.values(regime.rounds) as [SteadyRound[], SteadyRound[]];
    const rates = [...new Set(reference.map((r) => r.rate))];
    return rates.map((rate) => {
      const ref = reference.filter((r) => r.rate === rate);
      const v = variant.filter((r) => r.rate === rate);
      const cpuRatios = ref.map((r, i) => round2(v[i]!.cpuPerMessageUs / r.cpuPerMessageUs));
      const p99Ratios = ref.map((r, i) => round2((v[i]!.p99Ms ?? 0) / (r.p99Ms || Number.NaN)));
      const refRoles = byRole(ref);
      const roles = byRole(v);
      return {
        regime: regime.regime,
        receiversPerMessage: regime.receiversPerMessage,
        channels: regime.channels,
        rate,
        referenceUs: ref.map((r) => r.cpuPerMessageUs),
        variantUs: v.map((r) => r.cpuPerMessageUs),
        cpuRatios,
        medianCpuRatio: median(cpuRatios),
        referenceP99Ms: ref.map((r) => r.p99Ms),
        variantP99Ms: v.map((r) => r.p99Ms),
        p99Ratios,
        medianP99Ratio: median(p99Ratios),
        referenceByRoleUs: refRoles,
        variantByRoleUs: roles,
        /** What the variant adds per message, by role (µs; negative: it costs less there). */
        addedByRoleUs: Object.fromEntries([...new Set([...Object.keys(refRoles), ...Object.keys(roles)])].map((role) => [role, (roles[role] ?? 0) - (refRoles[role] ?? 0)])),
        lost: [ref, v].map((rounds) => rounds.reduce((sum, r) => sum + r.lost, 0)),
        duplicates: [ref, v].map((rounds) => rounds.reduce((sum, r) => sum + r.duplicates, 0)),
      };
    });
  });
}

export function topologiesMarkdown(results: TopologyResult[]): string {
  const lines = [
    `### topologies: each variant against the ${REFERENCE}, alternating rounds in the same run`,
    '',
    'CPU per message sums every process of the side: SocketBridge\'s, and every RabbitMQ node and Redis server or sentinel the side uses.',
    '',
    '| topology | regime, rate | server CPU per message (µs), each round: reference · variant | ratio, each round; median | by role (µs): reference → variant | p99 (ms): reference · variant | p99 ratio; median | lost, dup: reference · variant |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const result of results) {
    for (const s of topologySummary(result)) {
      const roles = Object.keys(s.addedByRoleUs)
        .map((role) => `${role} ${s.referenceByRoleUs[role] ?? 0} → ${s.variantByRoleUs[role] ?? 0}`)
        .join(', ');
      lines.push(
        `| ${result.topology.name} | ${s.regime} (${s.channels} ch × ${s.receiversPerMessage}), ${s.rate || 'max'} msg/s | ${s.referenceUs.join(', ')} · ${s.variantUs.join(', ')} | ${s.cpuRatios.join(', ')}; **${s.medianCpuRatio.toFixed(2)}** | ${roles} | ${s.referenceP99Ms.join(', ')} · ${s.variantP99Ms.join(', ')} | ${s.p99Ratios.join(', ')}; **${s.medianP99Ratio.toFixed(2)}** | ${s.lost[0]}, ${s.duplicates[0]} · ${s.lost[1]}, ${s.duplicates[1]} |`,
      );
    }
  }
  return lines.join('\n');
}
