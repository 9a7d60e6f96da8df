/**
 * podman as the image tests use it: build the image (scripts/image/build.sh), run commands in it, and
 * remove every container a test file started. podman here needs runc (crun refuses this machine's
 * cgroup layout) and raised ulimits; containers share the host network.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../../src/deploy/repo.js';

/** The image under test: built from this checkout by scripts/image/build.sh. */
export const IMAGE = process.env.SOCKETBRIDGE_TEST_IMAGE ?? 'localhost/socketbridge:test';
export const PODMAN_GLOBAL = ['--runtime', 'runc'];
export const ULIMITS = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096'];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function podman(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile('podman', [...PODMAN_GLOBAL, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function podmanOk(args: string[], timeoutMs?: number): Promise<string> {
  const result = await podman(args, timeoutMs);
  if (result.code !== 0) throw new Error(`podman ${args[0]} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}\n(podman ${args.join(' ')})`);
  return result.stdout;
}

/**
 * Builds the image from this checkout with scripts/image/build.sh (the stand-in base image once per
 * machine, then the Dockerfile with podman's layer cache): a no-op rebuild takes seconds, a changed
 * source rebuilds from `npm run build` on. Output goes to test-output/image-build.log.
 */
export async function buildImage(timeoutMs = 20 * 60_000): Promise<{ seconds: number; log: string }> {
  const dir = join(repoRoot, 'test-output');
  mkdirSync(dir, { recursive: true });
  const log = join(dir, 'image-build.log');
  const fd = openSync(log, 'w');
  const started = Date.now();
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(join(repoRoot, 'scripts/image/build.sh'), [], {
        cwd: repoRoot,
        env: { ...process.env, SOCKETBRIDGE_IMAGE: IMAGE },
        stdio: ['ignore', fd, fd],
      });
      const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
      child.once('error', reject);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    if (code !== 0) {
      const tail = readFileSync(log, 'utf8').replace(/\r/g, '\n').split('\n').filter((l) => l.trim()).slice(-30).join('\n');
      throw new Error(`scripts/image/build.sh exited ${code} (test-output/image-build.log):\n${tail}`);
    }
  } finally {
    closeSync(fd);
  }
  return { seconds: (Date.now() - started) / 1000, log };
}

/** Removes containers by name (podman rm -f), ignoring those already gone. */
export async function removeContainers(names: string[]): Promise<void> {
  if (names.length === 0) return;
  await podman(['rm', '--force', '--time', '0', '--ignore', ...names], 120_000);
}

/** The label every container a test starts carries: the test process's pid, for sweepStaleContainers. */
export const OWNER_LABEL = 'socketbridge.test/pid';

/**
 * Removes containers left by image tests whose process is gone (killed before its afterAll ran):
 * they would hold host ports and memory. Containers of live test processes are left alone.
 */
export async function sweepStaleContainers(): Promise<string[]> {
  const out = await podmanOk(['ps', '--all', '--filter', `label=${OWNER_LABEL}`, '--format', `{{.Names}} {{index .Labels "${OWNER_LABEL}"}}`]);
  const stale: string[] = [];
  for (const line of out.split('\n').filter(Boolean)) {
    const [name, pid] = line.split(' ');
    let alive = false;
    try {
      process.kill(Number(pid), 0);
      alive = true;
    } catch (error) {
      alive = (error as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive && name) stale.push(name);
  }
  await removeContainers(stale);
  return stale;
}

/** Names of the containers that still exist among `names`. */
export async function existingContainers(prefix: string): Promise<string[]> {
  const out = await podmanOk(['ps', '--all', '--format', '{{.Names}}', '--filter', `name=^${prefix}`]);
  return out.split('\n').filter(Boolean);
}
