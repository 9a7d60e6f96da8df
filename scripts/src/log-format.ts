const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const omitted = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'service', 'name']);

/** One pino JSON line as `12:00:01 [broker-1] INFO  msg key=value …`; other lines pass through prefixed. */
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
