import { afterAll, describe, expect, it } from 'vitest';
import { killAll } from '@socketbridge/devkit';
import { runChaos } from '../src/chaos.js';

afterAll(killAll);

describe('fault injection (the small run; `npm run chaos` is the full one)', () => {
  it('kills a worker, a broker and the active publisher, restarts the state server, drops RabbitMQ: every client still holds every message exactly once and in order', async () => {
    const report = await runChaos({ clients: 30, channels: 6, perClient: 2, messages: 3000, rate: 300, recover: true, log: (line) => console.log(line) });
    console.log(JSON.stringify(report));
    expect(report.faults.length).toBeGreaterThanOrEqual(6);
    expect(report.lost).toBe(0);
    expect(report.deliveredTwice).toBe(0);
    expect(report.outOfOrder).toBe(0);
    expect(report.delivered).toBe(report.expectedDeliveries);
  }, 240_000);

  it('on a three-node RabbitMQ cluster the node leading the quorum queue is SIGKILLed as well: every message once, in order; the stall per fault is printed', async () => {
    const report = await runChaos({ clients: 30, channels: 6, perClient: 2, messages: 3000, rate: 300, recover: true, rabbitmq: 'cluster', log: (line) => console.log(line) });
    console.log(JSON.stringify(report.perFault));
    expect(report.faults.at(-1)).toContain('SIGKILL RabbitMQ node');
    expect(report.perFault).toHaveLength(report.faults.length);
    expect(report.lost).toBe(0);
    expect(report.deliveredTwice).toBe(0);
    expect(report.outOfOrder).toBe(0);
    expect(report.delivered).toBe(report.expectedDeliveries);
    for (const fault of report.perFault) expect(fault.lost, fault.fault).toBe(0);
  }, 360_000);

  it('on Redis behind Sentinel the master is SIGKILLed as well: every message once, none lost, in order through the failover (the publisher tries a failed append again in place)', async () => {
    const report = await runChaos({ clients: 30, channels: 6, perClient: 2, messages: 4500, rate: 300, recover: true, redis: 'sentinel', log: (line) => console.log(line) });
    console.log(JSON.stringify(report.perFault));
    const failover = report.perFault.find((f) => f.fault.includes('Redis master'));
    expect(failover, report.faults.join('; ')).toBeDefined();
    expect(failover!.stallMs).toBeGreaterThan(0);
    expect(report.lost).toBe(0);
    expect(report.deliveredTwice).toBe(0);
    expect(report.delivered).toBe(report.expectedDeliveries);
    expect(report.outOfOrder).toBe(0);
    for (const fault of report.perFault) {
      expect(fault.lost, fault.fault).toBe(0);
      expect(fault.outOfOrder, fault.fault).toBe(0);
    }
  }, 240_000);
});
