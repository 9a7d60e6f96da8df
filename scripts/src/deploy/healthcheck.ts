#!/usr/bin/env node
/**
 * The image's HEALTHCHECK (Docker and compose; Kubernetes uses the chart's probes instead): finds
 * which service the container runs from PID 1's command line (tini -- node services/<name>/dist/main.js),
 * reads that service's port variable and asks its /healthz. Exit 0 healthy, 1 not.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Each service's entry point, the variable naming its port, and that variable's default. */
export const healthTargets: Record<string, { entry: string; portVar: string; defaultPort: number }> = {
  state: { entry: 'services/state/dist/main.js', portVar: 'SCC_STATE_SERVER_PORT', defaultPort: 7777 },
  broker: { entry: 'services/broker/dist/main.js', portVar: 'SCC_BROKER_SERVER_PORT', defaultPort: 8888 },
  worker: { entry: 'services/worker/dist/main.js', portVar: 'SOCKETCLUSTER_PORT', defaultPort: 8000 },
  publisher: { entry: 'services/publisher/dist/main.js', portVar: 'SOCKETBRIDGE_PORT', defaultPort: 3000 },
  operator: { entry: 'operator/dist/main.js', portVar: 'SOCKETBRIDGE_OPERATOR_PORT', defaultPort: 8080 },
};

/** The health URL for a container whose PID 1 runs `commandLine`, or null when it is not a long-running service. */
export function healthUrl(commandLine: string[], env: NodeJS.ProcessEnv): string | null {
  const target = Object.values(healthTargets).find(({ entry }) => commandLine.some((arg) => arg.endsWith(entry)));
  if (!target) return null;
  const port = Number(env[target.portVar] || target.defaultPort);
  return `http://127.0.0.1:${port}/healthz`;
}

function pid1CommandLine(): string[] {
  try {
    return readFileSync('/proc/1/cmdline', 'utf8').split('\0').filter(Boolean);
  } catch {
    return process.argv;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const url = healthUrl(pid1CommandLine(), process.env);
  if (!url) {
    // The helm test client or a one-off command: nothing to ask.
    process.exit(0);
  }
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2500) });
    process.exit(response.ok ? 0 : 1);
  } catch (error) {
    process.stderr.write(`healthcheck ${url}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
