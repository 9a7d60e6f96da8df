import { connectRedisOnce, createLogger, redactUrl } from '@socketbridge/common';
import { loadLocalConfig } from './config.js';
import { validateDocument } from './crd.js';
import { readManifests } from './files.js';
import { LocalBridges, type LocalRecord } from './local.js';
import { Reconciler } from './reconciler.js';
import { readyCondition, type SocketBridge, type SocketBridgeSpec } from './resource.js';

/** The commands of `npm run bridge` (cli.ts parses the arguments first, so a usage error loads none of this). */

function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}
function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function apply(local: LocalBridges, files: string[]): Promise<number> {
  const { documents, errors } = readManifests(files);
  let failures = errors.length;
  for (const error of errors) err(`error: ${error}`);
  // Every document is validated before any is applied, so a typo in one file is reported up front.
  const valid: Array<{ where: string; resource: SocketBridge }> = [];
  const seen = new Map<string, string>();
  for (const { where, value } of documents) {
    const result = validateDocument(value);
    if (!result.ok) {
      failures++;
      const name = (value as { metadata?: { name?: unknown } } | null)?.metadata?.name;
      err(`error: ${where}${typeof name === 'string' ? ` (${name})` : ''} is not a valid SocketBridge:`);
      for (const line of result.errors) err(`  ${line}`);
      continue;
    }
    const name = result.resource.metadata.name!;
    if (seen.has(name)) {
      failures++;
      err(`error: ${where}: socketbridge/${name} is also defined in ${seen.get(name)}`);
      continue;
    }
    seen.set(name, where);
    valid.push({ where, resource: result.resource });
  }
  for (const { resource } of valid) {
    const name = resource.metadata.name!;
    const before = await local.read(name);
    const { record, error, changes } = await local.apply(resource);
    if (error) {
      failures++;
      err(`socketbridge/${name} failed (${error.reason}): ${error.message}`);
      continue;
    }
    const queues = record.status.queues ?? [];
    const verb = !before ? 'created' : changes.length || before.generation !== record.generation || readyCondition(before.status)?.status !== 'True' ? 'configured' : 'unchanged';
    out(`socketbridge/${name} ${verb}: ${plural(queues.filter((q) => q.ready).length, 'queue')} ready${changes.length ? ` (${changes.join('; ')})` : ''}`);
  }
  return failures ? 1 : 0;
}

export async function remove(local: LocalBridges, files: string[], names: string[]): Promise<number> {
  const targets: Array<{ name: string; spec?: SocketBridgeSpec }> = names.map((name) => ({ name }));
  let failures = 0;
  if (files.length) {
    const { documents, errors } = readManifests(files);
    failures += errors.length;
    for (const error of errors) err(`error: ${error}`);
    for (const { where, value } of documents) {
      const result = validateDocument(value);
      if (result.ok) targets.push({ name: result.resource.metadata.name!, spec: result.resource.spec });
      else {
        const name = (value as { metadata?: { name?: unknown } } | null)?.metadata?.name;
        if (typeof name === 'string') targets.push({ name });
        else {
          failures++;
          err(`error: ${where}: no metadata.name to delete`);
        }
      }
    }
  }
  for (const { name, spec } of targets) {
    try {
      const { found, deletedQueues } = await local.delete(name, spec);
      if (!found) {
        failures++;
        err(`socketbridge/${name} not found`);
      } else {
        out(`socketbridge/${name} deleted${deletedQueues.length ? ` (deleted ${plural(deletedQueues.length, 'queue')}: ${deletedQueues.join(', ')})` : ' (queues retained)'}`);
      }
    } catch (error) {
      failures++;
      err(`socketbridge/${name} could not be deleted: ${(error as Error).message}`);
    }
  }
  return failures ? 1 : 0;
}

function table(records: LocalRecord[]): string {
  const rows = [['NAME', 'READY', 'QUEUES', 'MESSAGE']];
  for (const record of records) {
    const ready = readyCondition(record.status);
    rows.push([record.name, ready?.status ?? 'Unknown', record.status.queuesReady ?? '-', (ready?.message || ready?.reason || '').replace(/\s+/g, ' ')]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n');
}

export async function get(local: LocalBridges, names: string[], output: string | undefined): Promise<number> {
  const all = await local.list();
  const records = names.length ? all.filter((r) => names.includes(r.name)) : all;
  const missing = names.filter((name) => !all.some((r) => r.name === name));
  for (const name of missing) err(`socketbridge/${name} not found`);
  if (output === 'json') out(JSON.stringify(records, null, 2));
  else if (records.length) out(table(records));
  else if (!missing.length) out('No SocketBridges applied in local mode.');
  return missing.length ? 1 : 0;
}

export async function run(command: string, files: string[], names: string[], output: string | undefined, verbose: boolean): Promise<number> {
  const config = loadLocalConfig();
  const logger = createLogger('socketbridge-bridge', verbose ? 'debug' : 'silent');
  const redis = await connectRedisOnce(config.SOCKETBRIDGE_REDIS_URL, redactUrl(config.SOCKETBRIDGE_REDIS_URL));
  try {
    const reconciler = new Reconciler(redis, logger, { timeoutMs: config.SOCKETBRIDGE_RECONCILE_TIMEOUT_MS, connectionName: 'socketbridge-bridge (local mode)' });
    const local = new LocalBridges(redis, reconciler, config.SOCKETBRIDGE_RABBITMQ_URL);
    if (command === 'apply') return await apply(local, files);
    if (command === 'delete') return await remove(local, files, names);
    return await get(local, names, output);
  } finally {
    redis.disconnect();
  }
}
