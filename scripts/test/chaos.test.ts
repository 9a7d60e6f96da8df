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
});
