import { pino, type Logger } from 'pino';

export type { Logger };

/** One JSON line per event on stdout; `service` and `instanceId` let a log pipeline tell processes apart. */
export function createLogger(service: string, level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid, ...bindings } });
}
