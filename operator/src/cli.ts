#!/usr/bin/env node
// `npm run bridge -- apply|delete|get`: the operator's local mode, the same reconciler without Kubernetes.
import { parseArgs } from 'node:util';

const usage = `usage: npm run bridge -- <command>
  apply -f <file|directory> [-f …]   validate each SocketBridge against the CRD, then declare its queues,
                                     exchanges and bindings in RabbitMQ and its routes in the Redis registry
  delete -f <file|directory>         remove those bridges' routes (and queues, with deletionPolicy: delete)
  delete <name> [<name> …]           the same, by name (with the deletionPolicy last applied)
  get [<name> …] [-o json]           status: NAME READY QUEUES MESSAGE
Environment: SOCKETBRIDGE_RABBITMQ_URL (amqp://guest:guest@127.0.0.1:5672), SOCKETBRIDGE_REDIS_URL
(redis://127.0.0.1:6379), SOCKETBRIDGE_RECONCILE_TIMEOUT_MS (10000). Add -v for debug logs on stdout.`;

class UsageError extends Error {}

function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}
function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Parsed {
  command: string;
  files: string[];
  names: string[];
  output: string | undefined;
  verbose: boolean;
}

function parse(argv: string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        filename: { type: 'string', short: 'f', multiple: true },
        output: { type: 'string', short: 'o' },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help', files: [], names: [], output: undefined, verbose: false };
  const [command, ...names] = positionals;
  const files = values.filename ?? [];
  if (!command) throw new UsageError('no command given');
  if (!['apply', 'delete', 'get'].includes(command)) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  if (command === 'apply' && (files.length === 0 || names.length)) throw new UsageError('apply takes -f <file|directory>');
  if (command === 'delete' && files.length === 0 && names.length === 0) throw new UsageError('delete takes -f <file|directory> or names');
  if (command === 'delete' && files.length && names.length) throw new UsageError('delete takes -f or names, not both');
  if (command === 'get' && files.length) throw new UsageError('get takes names, not -f');
  if (values.output !== undefined && (command !== 'get' || values.output !== 'json')) throw new UsageError('-o json is the only output option, for get');
  return { command, files, names, output: values.output, verbose: values.verbose ?? false };
}

async function main(): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (error) {
    if (error instanceof UsageError) {
      err(`${error.message}\n${usage}`);
      return 2;
    }
    throw error;
  }
  if (parsed.command === 'help') {
    out(usage);
    return 0;
  }
  const { run } = await import('./commands.js');
  return run(parsed.command, parsed.files, parsed.names, parsed.output, parsed.verbose);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    err((error as Error).name === 'ConfigError' ? (error as Error).message : `error: ${(error as Error).message}`);
    process.exit(1);
  },
);
