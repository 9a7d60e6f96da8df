// The image, built for real with podman (scripts/image/build.sh), can load every program it is
// deployed to run: each entry point named by the chart's and the kustomize base's containers and by
// the Dockerfile (CMD, HEALTHCHECK) has its whole module graph resolved inside the image, as the
// pods run it (user 1000, read-only root). A package the runtime stage leaves out (the publisher's
// nested ajv 8 once was) fails here by name; so does a service that cannot start from the image.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderChart } from '../../src/deploy/helm-render.js';
import type { K8sObject } from '../../src/deploy/k8s-validate.js';
import { chartDir, dockerfileInstructions, kustomize, repoRoot, workloads } from '../../src/deploy/repo.js';
import { IMAGE, OWNER_LABEL, ULIMITS, buildImage, podman, podmanOk, removeContainers, sweepStaleContainers } from './support/podman.js';

const runId = `sbimg-${process.pid}-${Date.now().toString(36)}`;
const containers: string[] = [];

/** Entry point (path under /app) -> where it is deployed. */
function deployedEntryPoints(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (argv: string[], where: string) => {
    for (const arg of argv) {
      if (/\.(m?js|cjs)$/.test(arg)) {
        const set = out.get(arg) ?? new Set<string>();
        set.add(where);
        out.set(arg, set);
      }
    }
  };
  const chart = renderChart(chartDir, { releaseName: 'socketbridge', namespace: 'socketbridge' });
  const base = kustomize(join(repoRoot, 'manifests', 'base'));
  for (const [source, objects] of [
    ['chart', chart.objects as unknown as K8sObject[]],
    ['manifests/base', base],
  ] as const) {
    for (const w of workloads(objects.map((object) => ({ source, object })))) {
      add([...(w.container.command ?? []), ...(w.container.args ?? [])], `${source} ${String(w.object.kind)} ${String(w.object.metadata?.name)}`);
    }
  }
  for (const i of dockerfileInstructions().filter((x) => x.stage === 'runtime' && (x.instruction === 'CMD' || x.instruction === 'HEALTHCHECK'))) {
    const json = /\[.*\]/.exec(i.args);
    if (json) add(JSON.parse(json[0]) as string[], `Dockerfile ${i.instruction}`);
  }
  return out;
}

beforeAll(async () => {
  await sweepStaleContainers();
  const { seconds } = await buildImage();
  console.log(`image ${IMAGE} built (or found up to date) in ${seconds.toFixed(0)} s; ${await podmanOk(['image', 'inspect', '--format', '{{.Size}}', IMAGE])} bytes`);
}, 25 * 60_000);

afterAll(async () => {
  await removeContainers(containers);
});

describe('the image', () => {
  it('every deployed entry point resolves its whole module graph inside the image (user 1000, read-only root)', async () => {
    const entries = deployedEntryPoints();
    // The programs the image exists for are all among them, so the check cannot pass on an empty list.
    for (const expected of [
      'services/state/dist/main.js',
      'services/broker/dist/main.js',
      'services/worker/dist/main.js',
      'services/publisher/dist/main.js',
      'operator/dist/main.js',
      'scripts/dist/deploy/helm-test-client.js',
      'scripts/dist/deploy/healthcheck.js',
    ]) {
      expect([...entries.keys()], `${expected} is deployed`).toContain(expected);
    }
    const name = `${runId}-graph`;
    containers.push(name);
    const result = await podman([
      'run', '--rm', '--name', name, '--label', `${OWNER_LABEL}=${process.pid}`, '--network', 'none', ...ULIMITS, '--user', '1000:1000', '--read-only',
      '--volume', `${join(repoRoot, 'scripts/test/image/support/resolve-graph.mjs')}:/check/resolve-graph.mjs:ro`,
      '--entrypoint', '["node", "--experimental-vm-modules", "--experimental-import-meta-resolve", "--no-warnings", "/check/resolve-graph.mjs"]',
      IMAGE, ...[...entries.keys()].map((entry) => `/app/${entry}`),
    ]);
    const report = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as { modules: number; esm: number; cjs: number; problems: { from: string; specifier: string; error: string }[] };
    console.log(`resolved ${report.modules} modules (${report.esm} ES, ${report.cjs} CommonJS packages required) from ${entries.size} entry points`);
    expect(report.problems, result.stderr).toEqual([]);
    expect(result.code).toBe(0);
    // Every entry point's own graph: at least the services' shared library and their packages.
    expect(report.modules).toBeGreaterThan(200);
  }, 120_000);

  it('the guard finds a package missing from the image (it is not vacuous)', async () => {
    const name = `${runId}-missing`;
    containers.push(name);
    // The publisher's graph with its nested ajv 8 hidden: exactly the bug the runtime stage once had.
    const result = await podman([
      'run', '--rm', '--name', name, '--label', `${OWNER_LABEL}=${process.pid}`, '--network', 'none', ...ULIMITS, '--user', '1000:1000', '--read-only',
      '--tmpfs', '/app/services/publisher/node_modules:ro,notmpcopyup',
      '--tmpfs', '/app/node_modules/ajv:ro,notmpcopyup',
      '--volume', `${join(repoRoot, 'scripts/test/image/support/resolve-graph.mjs')}:/check/resolve-graph.mjs:ro`,
      '--entrypoint', '["node", "--experimental-vm-modules", "--experimental-import-meta-resolve", "--no-warnings", "/check/resolve-graph.mjs"]',
      IMAGE, '/app/services/publisher/dist/main.js',
    ]);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as { problems: { specifier: string; error: string }[] };
    expect(report.problems.map((p) => p.specifier)).toContain('ajv');
  }, 120_000);

  it('the runtime image holds no build tools, and nothing the services do not run', async () => {
    const name = `${runId}-contents`;
    containers.push(name);
    const out = await podmanOk([
      'run', '--rm', '--name', name, '--label', `${OWNER_LABEL}=${process.pid}`, '--network', 'none', ...ULIMITS, '--user', '1000:1000', '--read-only', '--entrypoint', '["sh", "-c"]', IMAGE,
      'cd /app && ls node_modules | tr "\\n" " "; echo; ls services | tr "\\n" " "; echo; id -u; find node_modules -name "*.d.ts" | head -1; echo end; ls services/publisher/console/dist | tr "\\n" " "',
    ]);
    const [modules = '', services = '', uid = '', declaration = '', consoleBuild = ''] = out.split('\n');
    for (const tool of ['typescript', 'vitest', 'eslint', 'playwright-core', 'vite', '@socketbridge/devkit']) {
      expect(modules.split(' '), tool).not.toContain(tool);
    }
    // No client: the web console's build bundles the client library in (services/publisher/console/dist).
    expect(services.trim().split(' ').sort()).toEqual(['broker', 'common', 'publisher', 'state', 'worker']);
    expect(consoleBuild.trim().split(' ').sort()).toEqual(['assets', 'index.html', 'key.html']);
    expect(uid.trim()).toBe('1000');
    expect(declaration).toBe('end');
  }, 60_000);

  it('the image is under 300 MB', async () => {
    const size = Number(await podmanOk(['image', 'inspect', '--format', '{{.Size}}', IMAGE]));
    console.log(`runtime image: ${(size / 1e6).toFixed(0)} MB`);
    expect(size).toBeLessThan(300e6);
  });
});
