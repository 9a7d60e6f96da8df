import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { repoRoot } from '@socketbridge/devkit';
import { RABBITMQ_URL, TEST_REDIS_URL, uniqueId, type RabbitAdmin } from './support/services.js';
import { OperatorTestBed } from './support/test-bed.js';

const id = uniqueId();
const names = { topic: `cli-${id}-topic`, fan: `cli-${id}-fan`, ordered: `cli-${id}-ordered`, template: `cli-${id}-template`, bad: `cli-${id}-bad`, down: `cli-${id}-down` };
const queue = (name: string) => `cli-${id}.${name}`;
const exchange = `cli-${id}`;
// The CLI's local mode: no API server; its files go in the bed's scratch folder.
const bed = new OperatorTestBed({
  apiServer: false,
  bridges: Object.values(names),
  queues: ['topic', 'fan', 'ordered', 'template', 'down'].map(queue),
  exchanges: [exchange, `${exchange}.fan`],
});
const scratch = bed.scratch;
let rabbit: RabbitAdmin;
let redis: Redis;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `npm run bridge -- …` (node operator/dist/cli.js …) with a bound on its run time. */
async function bridge(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, [join(repoRoot, 'operator/dist/cli.js'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, SOCKETBRIDGE_REDIS_URL: TEST_REDIS_URL, SOCKETBRIDGE_RABBITMQ_URL: RABBITMQ_URL, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function yamlFor(name: string, body: string): string {
  return `apiVersion: socketbridge.io/v1alpha1\nkind: SocketBridge\nmetadata:\n  name: ${name}\nspec:\n${body}`;
}

beforeAll(async () => {
  ({ rabbit, redis } = await bed.start());
  writeFileSync(
    join(scratch.path, 'a.yaml'),
    [
      yamlFor(names.topic, `  queues:\n    - name: ${queue('topic')}\n      bindings: [{exchange: ${exchange}, type: topic, routingKey: "t.#"}]\n      route: {channel: "t.{routingKey}"}\n  channels: [{pattern: "t.#", access: public, history: {size: 10}}]\n`),
      yamlFor(names.fan, `  queues:\n    - name: ${queue('fan')}\n      bindings: [{exchange: ${exchange}.fan, type: fanout}]\n      route: {channel: "f.{body.kind}"}\n`),
    ].join('---\n'),
  );
  writeFileSync(
    join(scratch.path, 'b.yml'),
    yamlFor(names.ordered, `  queues:\n    - name: ${queue('ordered')}\n      singleActiveConsumer: true\n      route: {channel: "o.{headers.client}"}\n  channels: [{pattern: "o.{clientId}", access: owner}]\n  deletionPolicy: delete\n`),
  );
  writeFileSync(join(scratch.path, 'notes.txt'), 'not a manifest: ignored');
});

afterAll(() => bed.stop());

describe('npm run bridge (local mode)', () => {
  it('apply -f <directory>: validates, declares and routes every SocketBridge in it (multi-document files too)', async () => {
    const first = await bridge(['apply', '-f', scratch.path]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout.trim().split('\n')).toEqual([
      `socketbridge/${names.topic} created: 1 queue ready (declared topic exchange ${exchange}; declared queue ${queue('topic')})`,
      `socketbridge/${names.fan} created: 1 queue ready (declared fanout exchange ${exchange}.fan; declared queue ${queue('fan')})`,
      `socketbridge/${names.ordered} created: 1 queue ready (declared queue ${queue('ordered')})`,
    ]);
    expect(await rabbit.routes(exchange, 't.x')).toBe(true);
    expect(await rabbit.routes(`${exchange}.fan`, 'anything')).toBe(true);
    expect(JSON.parse((await redis.hget(registryKeys.bridges, names.topic))!)).toMatchObject({ channels: [{ pattern: 't.#', access: 'public', history: { size: 10, ttlSeconds: 3600 } }] });

    const again = await bridge(['apply', '-f', join(scratch.path, 'a.yaml'), '-f', join(scratch.path, 'b.yml')]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`socketbridge/${names.topic} unchanged: 1 queue ready`);
    expect(again.stdout).toContain(`socketbridge/${names.ordered} unchanged: 1 queue ready`);
  });

  it('get: a status table, and -o json', async () => {
    const table = await bridge(['get', names.fan, names.ordered, names.topic]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+READY\s+QUEUES\s+MESSAGE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/))).toEqual([
      [names.fan, 'True', '1/1', 'Reconciled'],
      [names.ordered, 'True', '1/1', 'Reconciled'],
      [names.topic, 'True', '1/1', 'Reconciled'],
    ]);
    const json = await bridge(['get', names.topic, '-o', 'json']);
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({ name: names.topic, generation: 1, status: expect.objectContaining({ observedGeneration: 1, queues: [{ name: queue('topic'), ready: true, messages: expect.any(Number), consumers: 0 }] }) }),
    ]);
    const missing = await bridge(['get', `cli-${id}-nope`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`socketbridge/cli-${id}-nope not found`);
  });

  it('refuses schema-invalid documents before applying anything, and reports an invalid-but-schema-valid one as not ready', async () => {
    const file = join(scratch.path, 'mixed.yaml');
    writeFileSync(
      file,
      [
        yamlFor(names.bad, `  queues:\n    - name: ${queue('bad')}\n      durable: maybe\n      route: {channel: "x.{routingKey}"}\n`),
        yamlFor(names.template, `  queues:\n    - name: ${queue('template')}\n      route: {channel: "x.{message.id}"}\n`),
      ].join('---\n'),
    );
    const run = await bridge(['apply', '-f', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`error: ${file} (document 1) (${names.bad}) is not a valid SocketBridge:\n  spec.queues[0].durable: must be a boolean (got "maybe")`);
    expect(run.stderr).toContain(`socketbridge/${names.template} failed (InvalidSpec): queue ${queue('template')}: route x.{message.id} names {message.id}; use {routingKey}, {headers.<name>} or {body.<field>}`);
    expect(await redis.hget(registryKeys.bridges, names.bad)).toBeNull();
    expect(await redis.hget(registryKeys.bridges, names.template)).toBeNull();
    expect(await rabbit.queue(queue('template'))).toBeUndefined();
    const table = await bridge(['get', names.template]);
    expect(table.stdout).toMatch(new RegExp(`${names.template}\\s+False\\s+-\\s+queue ${queue('template')}: route`));
    expect((await bridge(['get', names.bad])).code).toBe(1);
    expect((await bridge(['delete', names.template])).code).toBe(0);
  });

  it('RabbitMQ or Redis unreachable: a clear error and a non-zero exit', async () => {
    const file = join(scratch.path, 'down.yaml');
    writeFileSync(file, yamlFor(names.down, `  queues:\n    - name: ${queue('down')}\n      route: {channel: "d.{routingKey}"}\n`));
    const rabbitDown = await bridge(['apply', '-f', file], { SOCKETBRIDGE_RABBITMQ_URL: 'amqp://guest:secret@127.0.0.1:1', SOCKETBRIDGE_RECONCILE_TIMEOUT_MS: '3000' });
    expect(rabbitDown.code).toBe(1);
    expect(rabbitDown.stderr).toContain(`socketbridge/${names.down} failed (RabbitMQUnavailable): RabbitMQ at amqp://guest:***@127.0.0.1:1 is unavailable: connect ECONNREFUSED 127.0.0.1:1`);
    expect(rabbitDown.stderr).not.toContain('secret');
    expect((await bridge(['get', names.down])).stdout).toMatch(new RegExp(`${names.down}\\s+False\\s+-\\s+RabbitMQ at`));
    const redisDown = await bridge(['get'], { SOCKETBRIDGE_REDIS_URL: 'redis://127.0.0.1:1' });
    expect(redisDown.code).toBe(1);
    expect(redisDown.stderr).toContain('error: Redis is not reachable at redis://127.0.0.1:1');
    expect((await bridge(['delete', names.down])).stdout).toContain(`socketbridge/${names.down} deleted (queues retained)`);
  });

  it('delete -f and delete <name>: routes go; queues go only with deletionPolicy delete', async () => {
    const byFile = await bridge(['delete', '-f', join(scratch.path, 'a.yaml')]);
    expect(byFile.code).toBe(0);
    expect(byFile.stdout.trim().split('\n')).toEqual([`socketbridge/${names.topic} deleted (queues retained)`, `socketbridge/${names.fan} deleted (queues retained)`]);
    expect(await rabbit.queue(queue('topic'))).toBeDefined();
    const byName = await bridge(['delete', names.ordered]);
    expect(byName.stdout.trim()).toBe(`socketbridge/${names.ordered} deleted (deleted 1 queue: ${queue('ordered')})`);
    expect(await rabbit.queue(queue('ordered'))).toBeUndefined();
    for (const name of [names.topic, names.fan, names.ordered]) expect(await redis.hget(registryKeys.bridges, name)).toBeNull();
    const again = await bridge(['delete', names.ordered]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`socketbridge/${names.ordered} not found`);
  });

  it('usage errors exit 2 with the usage', async () => {
    for (const args of [[], ['apply'], ['frobnicate'], ['get', '-f', 'x.yaml'], ['delete', 'a', '-f', 'x.yaml']]) {
      const run = await bridge(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr).toContain('usage: npm run bridge -- <command>');
    }
    const missing = await bridge(['apply', '-f', join(scratch.path, 'nope.yaml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`error: ${join(scratch.path, 'nope.yaml')}: no such file or directory`);
  });
});
