import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { ListeningMessage } from '@socketbridge/common';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** A port the OS just handed out; for programs that cannot listen on port 0 themselves. */
/** Every port freePort handed out in this process: the OS may offer a just-closed port again. */
const handedOut = new Set<number>();

/**
 * A port the OS says is free, never one this process handed out before: callers often take several
 * before any is bound (the pods test starts a whole chart at once), and two members given the same
 * port fail with EADDRINUSE (a CI run saw a worker and a broker get one port).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const bound = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(bound));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port the OS offered was new after 100 tries');
}

/** Polls `check` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 25,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

type LogLine = Record<string, unknown> & { msg?: string };

function isListeningMessage(message: unknown): message is ListeningMessage {
  return typeof message === 'object' && message !== null && Number.isInteger((message as ListeningMessage).listening);
}

/**
 * A child process whose JSON log lines are kept, so tests wait on what it says rather than on time.
 * Its port is what it announces over the IPC channel once it listens (`announceListening`).
 */
export class ManagedProcess {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];
  port = 0;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    onLine?: (name: string, line: string) => void,
    /** Started as the leader of its own process group: signals reach the whole group (a script and what it spawned). */
    readonly group = false,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      // A program that cannot start (not installed: ENOENT) emits 'error' and never 'exit'; without
      // this the error is uncaught and whoever waits for the exit (stop, afterAll) hangs.
      child.once('error', (error) => {
        this.raw.push(`${name}: ${error.message}`);
        resolve({ code: child.exitCode, signal: null });
      });
    });
    const onData = (chunk: Buffer) => {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (!text.trim()) continue;
        this.raw.push(text);
        onLine?.(name, text);
        if (this.raw.length > 5000) this.raw.shift();
        try {
          this.lines.push(JSON.parse(text) as LogLine);
        } catch {
          // Not JSON: upstream processes log plain text; keep it in raw only.
        }
      }
      this.wake();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('message', (message) => {
      if (!isListeningMessage(message)) return;
      this.port = message.listening;
      this.wake();
    });
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log line (already seen or still to come) that matches. */
  async waitForLog(match: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    return this.waitForEvent(() => this.lines.find(match), timeoutMs, what);
  }

  /** Resolves with the port the process announced once it listens (at any log level). */
  async waitForPort(timeoutMs: number, what = 'its port'): Promise<number> {
    return this.waitForEvent(() => this.port || undefined, timeoutMs, what);
  }

  /**
   * Resolves once `GET http://127.0.0.1:<port><path>` answers 200 (such as `/readyz`); throws if the
   * process exits first, or after `timeoutMs` with the last answer (a 503's reason says what it waits for).
   */
  async waitForHttp(path: string, timeoutMs: number, what: string, intervalMs = 50): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'nothing yet';
    for (;;) {
      if (!this.running) throw new Error(`${this.name} exited while waiting for ${what}:\n${this.tail()}`);
      try {
        const response = await fetch(`http://127.0.0.1:${this.port}${path}`, { signal: AbortSignal.timeout(2000) });
        const body = await response.text();
        if (response.status === 200) return;
        last = `${response.status} ${body}`;
      } catch (error) {
        last = (error as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what} (GET ${path} answered ${last}):\n${this.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  /** Waits, without polling, for `found` to give a value: it is asked again on every log line and IPC message. */
  private async waitForEvent<T>(found: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = found();
      if (value !== undefined) return value;
      if (!this.running) throw new Error(`${this.name} exited while waiting for ${what}:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  tail(count = 20): string {
    return this.raw.slice(-count).join('\n');
  }

  /** Sends `signal` to the process, or to its whole group when it leads one. */
  kill(signal: NodeJS.Signals): void {
    try {
      if (this.group && this.child.pid) process.kill(-this.child.pid, signal);
      else this.child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.kill(signal);
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

const started = new Set<ManagedProcess>();

/** DEVKIT_PROFILE=<dir>: the node flags that make a process write a CPU profile there when it exits. */
export function profileArgs(): string[] {
  return process.env.DEVKIT_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DEVKIT_PROFILE}`] : [];
}

export function spawnNode(
  name: string,
  script: string,
  env: Record<string, string>,
  onLine?: (name: string, line: string) => void,
  ownProcessGroup = false,
): ManagedProcess {
  const child = spawn(process.execPath, [...profileArgs(), script], {
    cwd: repoRoot,
    // In its own group a terminal's Ctrl-C reaches only the supervisor, which then stops members in order.
    detached: ownProcessGroup,
    env: { ...process.env, SOCKETBRIDGE_LOG_LEVEL: 'info', ...env },
    // The IPC channel carries the port a service announces when it listens (announceListening).
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const managed = new ManagedProcess(name, child, onLine);
  started.add(managed);
  void managed.exited.then(() => started.delete(managed));
  return managed;
}

/**
 * Any program, such as a private redis-server a test can stop and restart without touching the shared
 * one. `group`: in a process group of its own, for a script whose real server is its child (rabbitmq-server).
 */
export function spawnCommand(name: string, command: string, args: string[], options: { env?: Record<string, string>; group?: boolean } = {}): ManagedProcess {
  const child = spawn(command, args, {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.group ?? false,
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  });
  const managed = new ManagedProcess(name, child, undefined, options.group ?? false);
  started.add(managed);
  void managed.exited.then(() => started.delete(managed));
  return managed;
}

/** Last resort when the supervising process exits: no member outlives it. */
process.on('exit', () => {
  for (const managed of started) if (managed.running) managed.kill('SIGKILL');
});

/** Kills whatever a test file started and is still running (use in afterAll / afterEach). */
export async function killAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.stop('SIGKILL', 5000)));
}
