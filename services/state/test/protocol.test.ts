import { afterAll, afterEach, describe, expect, it } from 'vitest';
import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';
import { withTimeout } from '@socketbridge/common';
import { devSecrets, killAll, opsFetch, repoRoot, spawnNode, startService, waitFor, type ManagedProcess } from '@socketbridge/devkit';

const sockets: AGClientSocket[] = [];
let state: ManagedProcess | undefined;

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  await state?.stop('SIGKILL');
});
afterAll(killAll);

const timers = {
  SCC_STATE_SERVER_STARTUP_DELAY: '0',
  SCC_STATE_SERVER_SCALE_OUT_DELAY: '300',
  SCC_STATE_SERVER_SCALE_BACK_DELAY: '100',
  SCC_STATE_SERVER_RETRY_DELAY: '200',
};

async function member(type: 'scc-broker' | 'scc-worker', instancePort: number): Promise<AGClientSocket> {
  const socket = socketClusterClient.create({
    hostname: '127.0.0.1',
    port: state!.port,
    autoReconnect: false,
    query: { authKey: devSecrets.SCC_AUTH_KEY!, instanceType: type, instancePort: String(instancePort), version: '10.0.0' },
  });
  sockets.push(socket);
  await withTimeout(socket.listener('connect').once(), 10000, 'connect');
  return socket;
}

interface Push {
  procedure: string;
  data: { sccBrokerURIs?: string[]; sccWorkerURIs?: string[]; time: number; sccSourceWorkerURI: string };
}

/** Records what the state server pushes to a worker; `failFirst` errors the first push to see the retry. */
function recordPushes(worker: AGClientSocket, failFirst = false): Push[] {
  const pushes: Push[] = [];
  for (const procedure of ['sccBrokerJoinCluster', 'sccBrokerLeaveCluster', 'sccWorkerJoinCluster', 'sccWorkerLeaveCluster']) {
    void (async () => {
      for await (const request of worker.procedure(procedure)) {
        pushes.push({ procedure, data: request.data as Push['data'] });
        if (failFirst && pushes.length === 1) request.error(new Error('not now'));
        else request.end();
      }
    })();
  }
  return pushes;
}

describe('state server protocol', () => {
  it('answers a worker join with the cluster, debounces a burst of broker joins into one sorted push, and retries', async () => {
    state = await startService('state', { ...devSecrets, ...timers, SCC_STATE_SERVER_PORT: '0' });
    const worker = await member('scc-worker', 9100);
    const pushes = recordPushes(worker, true);
    const reply = (await worker.invoke('sccWorkerJoinCluster', { instanceId: 'w1' })) as Push['data'];
    expect(reply).toMatchObject({ sccBrokerURIs: [], sccWorkerURIs: ['ws://127.0.0.1:9100'], sccSourceWorkerURI: 'ws://127.0.0.1:9100' });

    for (const port of [9203, 9201, 9202]) {
      const broker = await member('scc-broker', port);
      await broker.invoke('sccBrokerJoinCluster', { instanceId: `b${port}` });
    }
    // The first push is refused by the worker, so the same snapshot comes again after the retry delay.
    await waitFor(() => pushes.length >= 2, 10000, 'the push and its retry');
    expect(pushes.map((p) => p.procedure)).toEqual(['sccBrokerJoinCluster', 'sccBrokerJoinCluster']);
    expect(pushes[1]!.data).toEqual(pushes[0]!.data);
    expect(pushes[0]!.data.sccBrokerURIs).toEqual(['ws://127.0.0.1:9201', 'ws://127.0.0.1:9202', 'ws://127.0.0.1:9203']);
    expect(pushes[0]!.data.sccSourceWorkerURI).toBe('ws://127.0.0.1:9100');
    expect(pushes[0]!.data.time).toBeGreaterThan(reply.time);

    // A broker that disconnects is a leave: pushed after the scale-back delay with a newer time.
    sockets.find((s) => (s as unknown as { options: { query: { instancePort: string } } }).options.query.instancePort === '9202')!.disconnect();
    await waitFor(() => pushes.some((p) => p.procedure === 'sccBrokerLeaveCluster'), 10000, 'the leave push');
    const leave = pushes.find((p) => p.procedure === 'sccBrokerLeaveCluster')!;
    expect(leave.data.sccBrokerURIs).toEqual(['ws://127.0.0.1:9201', 'ws://127.0.0.1:9203']);
    expect(leave.data.time).toBeGreaterThan(pushes[0]!.data.time);

    const view = (await (await opsFetch(`http://127.0.0.1:${state.port}/state`)).json()) as { brokers: unknown[]; workers: unknown[] };
    expect(view.brokers).toHaveLength(2);
    expect(view.workers).toHaveLength(1);
    expect((await fetch(`http://127.0.0.1:${state.port}/health-check`)).status).toBe(200);
  });

  it('tells the other workers when a worker joins and leaves, and uses the announced IP', async () => {
    state = await startService('state', { ...devSecrets, ...timers, SCC_STATE_SERVER_PORT: '0' });
    const first = await member('scc-worker', 9301);
    const pushes = recordPushes(first);
    await first.invoke('sccWorkerJoinCluster', { instanceId: 'w1' });
    const second = await member('scc-worker', 9302);
    const reply = (await second.invoke('sccWorkerJoinCluster', { instanceId: 'w2', instanceIp: '::1', instanceIpFamily: 'IPv6' })) as Push['data'];
    expect(reply.sccSourceWorkerURI).toBe('ws://[::1]:9302');
    await waitFor(() => pushes.some((p) => p.procedure === 'sccWorkerJoinCluster'), 10000, 'the worker join push');
    expect(pushes[0]!.data.sccWorkerURIs).toEqual(['ws://127.0.0.1:9301', 'ws://[::1]:9302']);
    second.disconnect();
    await waitFor(() => pushes.some((p) => p.procedure === 'sccWorkerLeaveCluster'), 10000, 'the worker leave push');
    expect(pushes.at(-1)!.data.sccWorkerURIs).toEqual(['ws://127.0.0.1:9301']);
  });

  it('refuses worker joins during the start-up delay, then admits them, and says so on /readyz', async () => {
    state = await startService('state', { ...devSecrets, ...timers, SCC_STATE_SERVER_STARTUP_DELAY: '1500', SCC_STATE_SERVER_PORT: '0' });
    expect((await fetch(`http://127.0.0.1:${state.port}/readyz`)).status).toBe(503);
    const worker = await member('scc-worker', 9400);
    await expect(worker.invoke('sccWorkerJoinCluster', { instanceId: 'early' })).rejects.toMatchObject({ name: 'StartupDelayError' });
    await state.waitForLog((l) => l.msg === 'start-up delay over: workers may join', 10000, 'the end of the start-up delay');
    await expect(worker.invoke('sccWorkerJoinCluster', { instanceId: 'early' })).resolves.toMatchObject({ sccWorkerURIs: ['ws://127.0.0.1:9400'] });
    expect((await fetch(`http://127.0.0.1:${state.port}/readyz`)).status).toBe(200);
  });

  it('fails fast on bad configuration, naming the variable', async () => {
    const bad = spawnNode('state-bad-config', `${repoRoot}services/state/dist/main.js`, { SCC_STATE_SERVER_PORT: 'seventy' });
    const exit = await bad.exited;
    expect(exit.code).toBe(1);
    expect(bad.raw.join('\n')).toMatch(/SCC_STATE_SERVER_PORT: .*\(got "seventy"\)/);
    // No cluster key and no ops key: both named, neither defaulted.
    expect(bad.raw.join('\n')).toMatch(/SCC_AUTH_KEY: required/);
    expect(bad.raw.join('\n')).toMatch(/SOCKETBRIDGE_OPS_KEY: required/);
    state = undefined;
  });
});
