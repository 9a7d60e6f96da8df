import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';
import { withTimeout } from '@socketbridge/common';
import { LocalCluster, openChannels, Receiver, SequencePublisher, connectClient, killAll, lossReport, opsFetch, upgradeOutcome, waitFor } from '@socketbridge/devkit';

const authKey = 'cluster-secret-of-this-test';
let cluster: LocalCluster;
const sockets: AGClientSocket[] = [];

beforeAll(async () => {
  cluster = new LocalCluster({ env: { ...openChannels, SCC_AUTH_KEY: authKey } });
  await cluster.startState();
});
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.disconnect();
});
afterAll(async () => {
  await cluster.stop();
  await killAll();
});

function member(query: Record<string, string>): AGClientSocket {
  const socket = socketClusterClient.create({ hostname: '127.0.0.1', port: cluster.state.port, autoReconnect: false, query });
  sockets.push(socket);
  return socket;
}

/** The error the state server refused this handshake with. */
async function handshakeError(query: Record<string, string>): Promise<Error> {
  const socket = member(query);
  const { error } = await withTimeout(socket.listener('error').once(), 10000, 'a handshake refusal');
  return error;
}

const good = { authKey, instanceType: 'scc-worker', instancePort: '9000', version: '9.2.0' };

describe('the state server refuses bad members and keeps serving the rest', () => {
  it('refuses a wrong or missing auth key at the upgrade, before any handshake', async () => {
    const { authKey: _omit, ...noKey } = good;
    for (const query of [{ ...good, authKey: 'wrong' }, { ...good, authKey: `${authKey}-` }, { ...good, authKey: '' }, noKey]) {
      expect(await upgradeOutcome(cluster.state.port, query)).toMatchObject({ status: 401, errorName: 'BadClusterAuthError' });
    }
    expect((await upgradeOutcome(cluster.state.port, good)).status).toBe(101);
  });

  it('refuses unsupported versions, including the "undefined" an unset version arrives as', async () => {
    for (const version of ['8.0.0', '11.0.0', 'undefined', 'null', 'banana']) {
      const error = await handshakeError({ ...good, version });
      expect(error.name).toBe('CompatibilityError');
      expect(error.message).toContain('majors 9 and 10');
    }
  });

  it('refuses unknown instance types and brokers without a port', async () => {
    expect(await handshakeError({ ...good, instanceType: 'scc-bogus' })).toMatchObject({ name: 'InvalidInstanceTypeError' });
    expect(await handshakeError({ ...good, instanceType: 'scc-broker', instancePort: 'undefined' })).toMatchObject({
      name: 'InvalidInstancePortError',
    });
  });

  it('refuses malformed join payloads with a reason, and joins from the wrong member type', async () => {
    const worker = member(good);
    await withTimeout(worker.listener('connect').once(), 10000, 'connect');
    const bad: unknown[] = [
      undefined,
      'a string',
      { instanceId: 42 },
      { instanceId: '' },
      { instanceId: 'x'.repeat(500) },
      { instanceId: 'w', instanceIp: 'not-an-ip' },
      { instanceId: 'w', instanceIpFamily: 'IPv5' },
    ];
    for (const payload of bad) {
      await expect(worker.invoke('sccWorkerJoinCluster', payload)).rejects.toMatchObject({ name: 'InvalidJoinError' });
    }
    await expect(worker.invoke('sccBrokerJoinCluster', { instanceId: 'b' })).rejects.toMatchObject({ name: 'InvalidInstanceTypeError' });
    expect((await cluster.stateView()).sccWorkerURIs).toEqual([]);
  });

  it('after all that, a real cluster still forms and delivers', async () => {
    await cluster.addBroker();
    await cluster.addBroker();
    await cluster.addWorker();
    await cluster.addWorker();
    await cluster.waitForMembers();
    const [w1, w2] = cluster.workers;
    const rx = await connectClient(w2!.port);
    const tx = await connectClient(w1!.port);
    sockets.push(rx, tx);
    const receiver = new Receiver(rx, ['after-bad-input']);
    await receiver.ready();
    const publisher = new SequencePublisher(tx, ['after-bad-input'], 5, 20);
    await publisher.start().done();
    await waitFor(() => lossReport(publisher, receiver).lost === 0, 10000, 'delivery');
    const metrics = await (await opsFetch(`http://127.0.0.1:${cluster.state.port}/metrics`)).text();
    for (const reason of ['auth_key', 'version', 'instance_type', 'instance_port', 'malformed_join']) {
      expect(metrics).toMatch(new RegExp(`socketbridge_cluster_refusals_total\\{reason="${reason}"[^}]*\\} [1-9]`));
    }
  });
});
