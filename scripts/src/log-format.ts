const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const omitted = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'service', 'name']);

/** pino's level numbers by name. */
export const LEVEL_NUMBERS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * One pino JSON line as `12:00:01 [broker-1] INFO  msg key=value …`;
 * other lines (Node's own warnings) pass through prefixed.
 */
export function formatLine(name: string, line: string): string {
  const prefix = `[${name}]`.padEnd(12);
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `${prefix} ${line}\n`;
  }
  const time = new Date(typeof entry.time === 'number' ? entry.time : Date.now()).toISOString().slice(11, 19);
  const fields = Object.entries(entry)
    .filter(([key]) => !omitted.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return `${time} ${prefix} ${levels[Number(entry.level)] ?? 'INFO '} ${String(entry.msg ?? '')}${fields ? ` ${fields}` : ''}\n`;
}
