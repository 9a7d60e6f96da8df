import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system) a process has used so far, from /proc; 0 if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return 0;
  }
}

export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(match?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** The process listening on a TCP port of this machine (from `ss`), or undefined. */
function listenerPid(port: number): number | undefined {
  try {
    const match = /pid=(\d+)/.exec(execFileSync('ss', ['-ltnpH', `sport = :${port}`]).toString());
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export type InfraRole = 'rabbitmq' | 'redis';

/**
 * The RabbitMQ and Redis processes listening on these ports (found by port, not by name: other
 * redis-servers on the machine are not ours), whose CPU counts as server side too. A cluster or a
 * Sentinel set lists every node (and sentinel): each is a process of its own.
 */
export function infrastructureOn(ports: Record<InfraRole, number[]>): Array<{ role: InfraRole; pid: number }> {
  const found: Array<{ role: InfraRole; pid: number }> = [];
  for (const role of ['rabbitmq', 'redis'] as const) {
    for (const port of ports[role]) {
      const pid = listenerPid(port);
      if (pid && !found.some((f) => f.pid === pid)) found.push({ role, pid });
    }
  }
  return found;
}

/** The machine's RabbitMQ and Redis, by the ports in their URLs (single nodes). */
export function infrastructure(rabbitmqUrl: string, redisUrl: string): Array<{ role: InfraRole; pid: number }> {
  return infrastructureOn({
    rabbitmq: [Number(new URL(rabbitmqUrl.split(',')[0]!).port || 5672)],
    redis: [Number(new URL(redisUrl.split(',')[0]!).port || 6379)],
  });
}

/**
 * Confines a process and all its threads to one CPU (`taskset -a -p -c`), so that the two sides
 * are compared on the same CPU budget. Threads started later inherit it.
 */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

/**
 * The load generator's latency histogram: buckets of 0.1 ms up to a minute, then an overflow
 * count. (Latencies here are a few ms: whole-millisecond buckets would make a p99 ratio jump.)
 */
export const bucketsPerMs = 10;
export const histogramBuckets = 60_000 * bucketsPerMs;

/** Wall-clock time in ms with sub-millisecond precision, comparable across processes on this machine. */
export const preciseNow = () => performance.timeOrigin + performance.now();

/**
 * The sample at index floor(p × n) of all n samples in order (p in 0..1), in ms, read from a
 * histogram of 1/bucketsPerMs ms buckets; a sample past the last bucket reads as `max`. Null
 * without samples.
 */
export function histogramPercentile(counts: Uint32Array, overflow: number, max: number | null, p: number): number | null {
  let total = overflow;
  for (const count of counts) total += count;
  if (total === 0) return null;
  const rank = Math.min(total - 1, Math.floor(p * total));
  let below = 0;
  for (let bucket = 0; bucket < counts.length; bucket++) {
    below += counts[bucket]!;
    if (below > rank) return bucket / bucketsPerMs;
  }
  return max;
}
