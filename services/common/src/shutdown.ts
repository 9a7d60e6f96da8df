import type { Logger } from 'pino';

export interface ShutdownOptions {
  logger: Logger;
  /** Longest the drain may take before the process exits anyway (keep below the pod's grace period). */
  timeoutMs: number;
  /** Runs once, on the first SIGTERM or SIGINT: finish in-flight work, then release resources. */
  drain: (signal: string) => Promise<void>;
}

/**
 * Installs the process-level handlers every service needs: a graceful drain on SIGTERM/SIGINT,
 * a logged (not fatal) unhandled rejection, and a logged exit on an uncaught exception, after which
 * the process state is unknown and the orchestrator must restart it.
 */
export function installShutdown({ logger, timeoutMs, drain }: ShutdownOptions): void {
  let draining = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (draining) {
      logger.warn({ signal }, 'second signal while draining: exiting now');
      process.exit(1);
    }
    draining = true;
    logger.info({ signal, timeoutMs }, 'draining');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'drain timed out: exiting');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    drain(signal).then(
      () => {
        logger.info('drained: exiting');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'drain failed: exiting');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception: exiting');
    process.exit(1);
  });
}

/** Starts a service's main function and turns a start-up failure (such as bad config) into one clear line and exit 1. */
export function runMain(service: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    process.stderr.write(`${service}: failed to start: ${message}\n`);
    process.exit(1);
  });
}

/** The message a service sends its supervisor once it listens: `{ listening: <port> }`. */
export interface ListeningMessage {
  listening: number;
}

/**
 * Tells a supervising parent process (devkit: `npm start`, tests, benchmarks) which port this
 * process bound, over Node's IPC channel. Not a log line, so it arrives at any log level, and the
 * process binds the port itself (port 0 included), so no other process can take it in between.
 * Without a parent channel (containers, `node main.js`) it does nothing.
 */
export function announceListening(port: number): void {
  const message: ListeningMessage = { listening: port };
  // The callback takes a send error (the parent went away) instead of an 'error' event on process.
  if (process.send && process.connected) process.send(message, undefined, undefined, () => undefined);
}
