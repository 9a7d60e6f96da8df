// The Tiltfile (parsed as Python, since Starlark is a subset), the Dockerfile and .dockerignore read
// statically (no Docker engine here), and the two scripts the image carries: the HEALTHCHECK and the
// helm test client's configuration.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { healthTargets, healthUrl } from '../../src/deploy/healthcheck.js';
import { optionsFromEnv } from '../../src/deploy/helm-test-client.js';
import { loadYamlFile, renderChart, type Values } from '../../src/deploy/helm-render.js';
import { chartDir, dockerfileInstructions, entryPoints, kustomize, repoRoot, tiltfileCalls, TiltfileSyntaxError, workloads, type TiltCall } from '../../src/deploy/repo.js';
import type { K8sObject } from '../../src/deploy/k8s-validate.js';

describe('Tiltfile', () => {
  const { calls, consts, pythonOnly } = tiltfileCalls();
  const byFn = (fn: string) => calls.filter((c) => c.fn === fn);
  const resources = byFn('k8s_resource');
  const resource = (name: string): TiltCall | undefined => resources.find((c) => c.args[0] === name || c.kwargs.workload === name);

  it('parses as Starlark: Python syntax without what Starlark lacks; a syntax error is reported with its line', () => {
    expect(pythonOnly).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), 'tiltfile-'));
    try {
      writeFileSync(join(dir, 'Tiltfile'), "k8s_yaml('a.yaml'\n");
      expect(() => tiltfileCalls(join(dir, 'Tiltfile'))).toThrow(TiltfileSyntaxError);
      writeFileSync(join(dir, 'Tiltfile'), "x = f'{1}'\nwhile True:\n  pass\n");
      expect(tiltfileCalls(join(dir, 'Tiltfile')).pythonOnly).toEqual(['While at line 2', 'JoinedStr at line 1']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses only Tilt built-ins', () => {
    const builtins = new Set([
      'docker_build', 'fall_back_on', 'sync', 'run', 'k8s_yaml', 'kustomize', 'helm', 'filter_yaml', 'k8s_resource', 'local_resource',
      'link', 'update_settings', 'watch_settings', 'load', 'allow_k8s_contexts', 'port_forward', 'probe', 'http_get_action', 'read_json',
      'k8s_namespace',
    ]);
    expect(calls.map((c) => c.fn).filter((fn) => !builtins.has(fn))).toEqual([]);
  });

  it('builds the image from the Dockerfile\'s dev stage with a live update: sync sources, npm run build, a full rebuild on dependency changes', () => {
    const build = byFn('docker_build')[0]!;
    expect(build.args.slice(0, 2)).toEqual(['socketbridge', '.']);
    expect(build.kwargs.target).toBe('dev');
    const steps = build.kwargs.live_update as { $call: string; args: unknown[] }[];
    expect(steps.map((s) => s.$call)).toEqual(['fall_back_on', 'sync', 'sync', 'sync', 'sync', 'run']);
    // Every workspace's package.json and tsconfig.json, from the root package.json's workspace list.
    const fallBack = JSON.stringify(steps[0]!.args[0]);
    for (const part of ['package.json', 'package-lock.json', "w + '/package.json' for w in WORKSPACES", "w + '/tsconfig.json' for w in WORKSPACES"]) expect(fallBack).toContain(part);
    expect(calls.find((c) => c.fn === 'read_json')?.args).toEqual(['package.json']);
    expect(steps.filter((s) => s.$call === 'sync').map((s) => s.args[0])).toEqual(expect.arrayContaining(['services/', 'operator/src/', 'scripts/src/']));
    expect(steps.at(-1)!.args[0]).toBe('npm run build');
    const dev = dockerfileInstructions().filter((i) => i.stage === 'dev');
    expect(dev.length, 'the Dockerfile has a dev stage').toBeGreaterThan(0);
  });

  it('deploys the chart with the dev values and manifests/dev, leaving out the helm test hook', () => {
    const helm = byFn('helm')[0]!;
    expect(helm.args[0]).toBe('charts/socketbridge');
    expect(helm.kwargs.values).toEqual(['charts/socketbridge/values-dev.yaml']);
    // Rendered in the namespace Tilt deploys to, so the RoleBinding subjects name the right ServiceAccount.
    expect(helm.kwargs.namespace).toEqual({ $call: 'k8s_namespace', args: [], kwargs: {} });
    for (const path of helm.kwargs.values as string[]) expect(existsSync(join(repoRoot, path)), path).toBe(true);
    expect(byFn('kustomize').map((c) => c.args[0])).toEqual(['manifests/dev']);
    expect(byFn('filter_yaml')[0]!.kwargs).toMatchObject({ name: 'socketbridge-test-connection', kind: 'Pod' });
  });

  it('port-forwards the worker (8000), the publisher (3000) and RabbitMQ\'s management UI (15672), by the workload names the chart and manifests/dev create', () => {
    expect(resource('socketbridge-worker')?.kwargs.port_forwards).toEqual(['8000:8000']);
    expect(resource('socketbridge-publisher')?.kwargs.port_forwards).toEqual(['3000:3000']);
    expect(resource('rabbitmq')?.kwargs.port_forwards).toEqual(expect.arrayContaining(['15672:15672']));
    const release = consts.RELEASE as string;
    const chart = renderChart(chartDir, { releaseName: release, values: [loadYamlFile(join(chartDir, 'values-dev.yaml')) as Values] });
    const dev = kustomize(join(repoRoot, 'manifests', 'dev'));
    const workloadNames = new Set(
      workloads([...chart.objects, ...dev].map((object) => ({ source: '', object: object as K8sObject })))
        .filter((w) => w.object.kind !== 'Pod')
        .map((w) => String(w.object.metadata?.name)),
    );
    const named = resources.map((c) => String(c.args[0]));
    expect(named.filter((n) => !workloadNames.has(n))).toEqual([]);
    expect([...workloadNames].filter((n) => !named.includes(n))).toEqual([]);
  });

  it('orders start-up with resource_deps: state, then brokers, then workers and publisher; every dependency is a resource', () => {
    const all = new Set([...resources.map((c) => String(c.args[0])), ...byFn('local_resource').map((c) => String(c.args[0]))]);
    expect(resource('socketbridge-broker')?.kwargs.resource_deps).toContain('socketbridge-state');
    expect(resource('socketbridge-worker')?.kwargs.resource_deps).toContain('socketbridge-broker');
    expect(resource('socketbridge-publisher')?.kwargs.resource_deps).toEqual(expect.arrayContaining(['socketbridge-broker', 'rabbitmq', 'redis']));
    const deps = calls.flatMap((c) => (Array.isArray(c.kwargs.resource_deps) ? (c.kwargs.resource_deps as string[]) : []));
    expect(deps.filter((d) => !all.has(d))).toEqual([]);
  });

  it('offers the tests and the example bridges as manual local resources', () => {
    const local = Object.fromEntries(byFn('local_resource').map((c) => [String(c.args[0]), c.kwargs]));
    expect(local.tests).toMatchObject({ cmd: 'npm test', auto_init: false, trigger_mode: { $name: 'TRIGGER_MODE_MANUAL' } });
    expect(local['bridges-local']).toMatchObject({ cmd: 'npm run bridge -- apply -f manifests/examples', trigger_mode: { $name: 'TRIGGER_MODE_MANUAL' } });
    expect(local.bridges).toMatchObject({ cmd: 'kubectl apply -f manifests/examples', trigger_mode: { $name: 'TRIGGER_MODE_MANUAL' } });
    expect(local.smoke?.cmd).toMatch(/helm-test-client\.js/);
    // The smoke test's admin key is the dev values' key.
    const dev = loadYamlFile(join(chartDir, 'values-dev.yaml')) as { auth: { apiKey: string } };
    expect((local.smoke?.env as Record<string, string>).API_KEY).toBe(dev.auth.apiKey);
  });
});

describe('Dockerfile', () => {
  const instructions = dockerfileInstructions();
  const runtime = instructions.filter((i) => i.stage === 'runtime');
  const stages = [...new Set(instructions.map((i) => i.stage))];

  it('is multi-stage: build with npm ci and npm run build, production dependencies with npm ci --omit=dev, and the runtime last', () => {
    expect(stages).toEqual(expect.arrayContaining(['build', 'deps', 'runtime']));
    expect(stages.at(-1)).toBe('runtime');
    const run = (stage: string) => instructions.filter((i) => i.stage === stage && i.instruction === 'RUN').map((i) => i.args).join('\n');
    expect(run('build')).toMatch(/npm ci(\s|$)/);
    expect(run('build')).toMatch(/npm run build/);
    expect(run('deps')).toMatch(/npm ci --omit=dev/);
    expect(runtime.filter((i) => i.instruction === 'RUN').map((i) => i.args).join('\n')).not.toMatch(/npm (ci|install)/);
  });

  it('runs on Node 22 or newer', () => {
    const arg = instructions.find((i) => i.instruction === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    const image = arg?.args.split('=')[1] ?? '';
    expect(Number(/^node:(\d+)/.exec(image)?.[1])).toBeGreaterThanOrEqual(22);
    for (const from of instructions.filter((i) => i.instruction === 'FROM')) expect(from.args).toMatch(/^(\$\{NODE_IMAGE\}|build)(\s|$)/);
  });

  it('the runtime runs as a numeric non-root user, with tini as PID 1 and a default CMD of a service entry point', () => {
    const user = runtime.find((i) => i.instruction === 'USER')?.args ?? '';
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    const entrypoint = JSON.parse(runtime.find((i) => i.instruction === 'ENTRYPOINT')!.args) as string[];
    expect(entrypoint[0]).toMatch(/tini$/);
    expect(runtime.find((i) => i.instruction === 'RUN' && /apt-get install .*\btini\b/.test(i.args))).toBeDefined();
    const cmd = JSON.parse(runtime.find((i) => i.instruction === 'CMD')!.args) as string[];
    expect(cmd[0]).toBe('node');
    expect(Object.keys(entryPoints)).toContain(cmd[1]);
    // No STOPSIGNAL: Docker and Kubernetes send SIGTERM, which every service drains on.
    expect(instructions.filter((i) => i.instruction === 'STOPSIGNAL')).toEqual([]);
  });

  it('the runtime holds the build of every entry point the chart and manifests run, and its package.json', () => {
    const copied = runtime.filter((i) => i.instruction === 'COPY').map((i) => i.args.split(/\s+/).slice(-1)[0]!);
    for (const entry of Object.keys(entryPoints)) {
      const dist = entry.slice(0, entry.lastIndexOf('/') + 1);
      const workspace = entry.split('/dist/')[0]!;
      expect(copied.some((dest) => dist.startsWith(dest)), `${dist} is not copied into the runtime`).toBe(true);
      expect(copied, `${workspace}/package.json (its "type": "module")`).toContain(`${workspace}/`);
      const source = join(repoRoot, entry.replace('/dist/', '/src/').replace(/\.js$/, '.ts'));
      expect(existsSync(source), `${entry} is built from ${source}`).toBe(true);
    }
    expect(copied).toContain('services/common/dist/');
    // Every node_modules folder the deps stage's npm ci wrote, not only the root's: npm nests packages
    // under a workspace (the publisher's ajv 8), and copying only /app/node_modules once lost them.
    expect(runtime.some((i) => i.instruction === 'COPY' && /^--from=deps\s+\/deps\/\s+\.\/$/.test(i.args)), 'COPY --from=deps /deps/ ./').toBe(true);
    const deps = instructions.find((i) => i.stage === 'deps' && /npm ci --omit=dev/.test(i.args))!.args;
    expect(deps).toMatch(/find \. -type d -name node_modules -prune -exec cp -a --parents \{\} \/deps\//);
  });

  it('production dependencies cover every workspace the runtime carries', () => {
    const deps = instructions.find((i) => i.stage === 'deps' && /npm ci --omit=dev/.test(i.args))!.args;
    const workspaces = [...deps.matchAll(/--workspace=(\S+)/g)].map((m) => m[1]!);
    const carried = runtime
      .filter((i) => i.instruction === 'COPY' && /\/dist\/$/.test(i.args))
      .map((i) => i.args.split(/\s+/).slice(-1)[0]!.replace(/\/dist\/(deploy\/)?$/, ''))
      .filter((w) => w !== 'scripts');
    // A folder inside a workspace (the publisher's console build: static files) rides on that workspace's dependencies.
    expect(carried.filter((w) => !workspaces.some((ws) => w === ws || w.startsWith(`${ws}/`)))).toEqual([]);
    for (const w of workspaces) expect(existsSync(join(repoRoot, w, 'package.json')), w).toBe(true);
  });

  it('has a HEALTHCHECK on the services\' /healthz through scripts/dist/deploy/healthcheck.js', () => {
    const check = runtime.find((i) => i.instruction === 'HEALTHCHECK')?.args ?? '';
    expect(check).toMatch(/CMD \["node", "scripts\/dist\/deploy\/healthcheck\.js"\]/);
    expect(existsSync(join(repoRoot, 'scripts', 'src', 'deploy', 'healthcheck.ts'))).toBe(true);
  });

  it('every COPY source exists, and .dockerignore keeps the sources and package files in the context', () => {
    for (const i of instructions.filter((x) => x.instruction === 'COPY' && !x.args.startsWith('--from'))) {
      const sources = i.args.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(existsSync(join(repoRoot, source)), `Dockerfile:${i.line}: ${source}`).toBe(true);
    }
    const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(ignore).toEqual(expect.arrayContaining(['.git', '**/node_modules', '**/dist']));
    for (const kept of ['package.json', 'package-lock.json', 'services', 'operator', 'scripts', 'types', 'tsconfig.base.json', 'tsconfig.json']) {
      expect(ignore.filter((pattern) => pattern === kept || pattern === `${kept}/` || pattern === `/${kept}`), kept).toEqual([]);
    }
    expect(ignore.some((p) => /(^|\/)src\/?$/.test(p))).toBe(false);
  });
});

describe('scripts the image carries', () => {
  it('healthcheck: finds the service from PID 1\'s command line and asks its /healthz on the configured port', () => {
    expect(healthUrl(['/usr/bin/tini', '--', 'node', 'services/broker/dist/main.js'], {})).toBe('http://127.0.0.1:8888/healthz');
    expect(healthUrl(['/usr/bin/tini', '--', 'node', 'services/worker/dist/main.js'], { SOCKETCLUSTER_PORT: '9000' })).toBe('http://127.0.0.1:9000/healthz');
    expect(healthUrl(['tini', '--', 'node', 'operator/dist/main.js'], {})).toBe('http://127.0.0.1:8080/healthz');
    expect(healthUrl(['node', 'scripts/dist/deploy/helm-test-client.js'], {})).toBeNull();
    expect(Object.values(healthTargets).map((t) => t.entry).every((e) => e in entryPoints)).toBe(true);
  });

  it('helm test client: reads its settings from the environment and names what is missing', () => {
    expect(optionsFromEnv({ PUBLISHER_URL: 'http://p:3000/', WORKER_URL: 'ws://w:8000/socketcluster/', API_KEY: 'k', TIMEOUT_SECONDS: '30' })).toEqual({
      publisherUrl: 'http://p:3000',
      workerUrl: 'ws://w:8000/socketcluster/',
      apiKey: 'k',
      timeoutMs: 30_000,
    });
    expect(() => optionsFromEnv({ WORKER_URL: 'ws://w' })).toThrow(/missing environment: PUBLISHER_URL, API_KEY/);
    expect(() => optionsFromEnv({ PUBLISHER_URL: 'p', WORKER_URL: 'w', API_KEY: 'k', TIMEOUT_SECONDS: 'soon' })).toThrow(/TIMEOUT_SECONDS/);
  });
});
