import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { AmqpProducer, rabbitNames, rabbitmqUrl, recordingSubscriber, startPublisherTestbed, waitFor, type PublisherTestbed } from '@socketbridge/devkit';

/**
 * SOCKETBRIDGE_QUEUE_TYPE against the machine's RabbitMQ: a quorum default queue (one node is a
 * cluster of one) is declared as such and carries messages; a default queue already declared with
 * another type makes RabbitMQ answer 406, which the publisher logs naming the setting while it
 * keeps its other queues.
 */
const run = promisify(execFile);
const testbeds: PublisherTestbed[] = [];
const extraQueues: string[] = [];

afterAll(async () => {
  const producer = await AmqpProducer.connect();
  for (const queue of extraQueues) await producer.channel.deleteQueue(queue).catch(() => undefined);
  await producer.close();
  for (const testbed of testbeds) await testbed.teardown();
});

/** The type RabbitMQ reports for a queue of the tests' vhost ('' if there is no such queue). */
/** The publisher's socketbridge_rabbitmq_default_queue_refused gauge (NaN if it is not served). */
async function defaultQueueRefused(testbed: PublisherTestbed): Promise<number> {
  return (await testbed.api.metric('socketbridge_rabbitmq_default_queue_refused')) ?? NaN;
}

async function queueType(name: string): Promise<string> {
  const vhost = decodeURIComponent(new URL(rabbitmqUrl()).pathname.slice(1)) || '/';
  const { stdout } = await run('rabbitmqctl', ['list_queues', '-p', vhost, 'name', 'type', '-q', '--no-table-headers']);
  return stdout.split('\n').map((line) => line.trim().split(/\s+/)).find(([queue]) => queue === name)?.[1] ?? '';
}

describe('SOCKETBRIDGE_QUEUE_TYPE', () => {
  it('quorum: the default queue is declared quorum and delivers', async () => {
    const testbed = await startPublisherTestbed('qtype', { env: { SOCKETBRIDGE_QUEUE_TYPE: 'quorum', SOCKETBRIDGE_PUBLIC_CHANNELS: 'qtype.*' } });
    testbeds.push(testbed);
    const { names, cluster } = testbed;
    await cluster.publishers[0]!.waitForLog((l) => l.msg === 'consuming' && l.queue === names.SOCKETBRIDGE_QUEUE, 20000, 'the publisher to consume its default queue');
    expect(await queueType(names.SOCKETBRIDGE_QUEUE)).toBe('quorum');
    expect(await defaultQueueRefused(testbed)).toBe(0);
    const subscriber = await recordingSubscriber(cluster.workers[0]!.port, 'qtype.feed');
    const producer = await AmqpProducer.connect();
    try {
      for (let seq = 0; seq < 20; seq++) await producer.publish(names.SOCKETBRIDGE_EXCHANGE, 'qtype.feed', { seq }, { messageId: `q:${seq}` });
      await waitFor(() => subscriber.seen.length >= 20, 15000, 'twenty messages through the quorum queue');
      expect(subscriber.seen.map((s) => s.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    } finally {
      subscriber.client.close();
      await producer.close();
    }
  }, 60_000);

  it('a default queue declared earlier with another type: an error naming the setting, and the other queues go on', async () => {
    const names = rabbitNames('qtype406');
    const producer = await AmqpProducer.connect();
    await producer.channel.assertQueue(names.SOCKETBRIDGE_QUEUE, { durable: true });
    await producer.close();
    extraQueues.push(names.SOCKETBRIDGE_QUEUE, names.SOCKETBRIDGE_DEAD_LETTER_QUEUE);
    const testbed = await startPublisherTestbed('qtype406', { env: { ...names, SOCKETBRIDGE_QUEUE_TYPE: 'quorum' } });
    testbeds.push(testbed);
    const publisher = testbed.cluster.publishers[0]!;
    const refused = await publisher.waitForLog((l) => l.level === 50 && l.queue === names.SOCKETBRIDGE_QUEUE, 20000, 'the refusal to be logged');
    expect(String(refused.msg)).toContain('SOCKETBRIDGE_QUEUE_TYPE');
    expect(String(refused.err)).toContain('PRECONDITION_FAILED');
    // Not only a log line: the gauge an alert or the publisher dashboard reads.
    expect(await defaultQueueRefused(testbed)).toBe(1);
    // The queue is left as it was, the dead-letter queue is declared, and a bridge's queue is consumed.
    expect(await queueType(names.SOCKETBRIDGE_QUEUE)).toBe('classic');
    expect(await queueType(names.SOCKETBRIDGE_DEAD_LETTER_QUEUE)).toBe('classic');
    const bridgeQueue = `${names.SOCKETBRIDGE_EXCHANGE}.bridge`;
    extraQueues.push(bridgeQueue);
    const setup = await AmqpProducer.connect();
    await setup.channel.assertQueue(bridgeQueue, { durable: true });
    await setup.close();
    const put = await testbed.api.request('PUT', `/v1/bridges/${names.SOCKETBRIDGE_EXCHANGE}`, {
      queues: [{ name: bridgeQueue, route: { channel: 'qtype406.{routingKey}' } }],
      channels: [{ pattern: 'qtype406.*', access: 'public' }],
    });
    expect(put.status).toBe(200);
    await publisher.waitForLog((l) => l.msg === 'consuming' && l.queue === bridgeQueue, 20000, 'the publisher to consume the bridge queue');
    const status = await testbed.api.request<{ queues: string[] }>('GET', '/v1/create-rabbit-ch');
    expect(status.body.queues).toContain(bridgeQueue);
    expect(status.body.queues).not.toContain(names.SOCKETBRIDGE_QUEUE);
    expect(publisher.running).toBe(true);
    await testbed.api.request('DELETE', `/v1/bridges/${names.SOCKETBRIDGE_EXCHANGE}`);
  }, 60_000);
});
