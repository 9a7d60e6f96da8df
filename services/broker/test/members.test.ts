import { afterAll, describe, expect, it } from 'vitest';
import type { AGClientSocket } from 'socketcluster-client';
import { LocalCluster, connectClient, killAll, opsFetch, upgradeOutcome, waitFor } from '@socketbridge/devkit';

// A broker shard as its members see it: the cluster's authKey at the door, then subscribe and
// publish in scc-broker-client's packet shape ({sender, messages}).
const authKey = 'broker-members-test-key';
let cluster: LocalCluster | undefined;
const sockets: AGClientSocket[] = [];

afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  await cluster?.stop();
  await killAll();
});

async function member(port: number, key: string): Promise<AGClientSocket> {
  const socket = await connectClient(port, { query: { authKey: key } });
  sockets.push(socket);
  return socket;
}

describe('a broker shard and its members', () => {
  it('refuses a member without the cluster key, serves one with it, and counts messages, not packets', async () => {
    cluster = await LocalCluster.start({ brokers: 1, workers: 0, env: { SCC_AUTH_KEY: authKey } });
    const port = cluster.brokers[0]!.port;

    // Refused at the upgrade itself: 401 naming the error, no socket opened.
    for (const query of [{ authKey: 'wrong-key-wrong-key' }, {}, { authKey: `${authKey}x` }, { authKey: authKey.slice(0, -1) }] as Array<Record<string, string>>) {
      expect(await upgradeOutcome(port, query)).toMatchObject({ status: 401, errorName: 'BadClusterAuthError' });
    }
    expect((await upgradeOutcome(port, { authKey })).status).toBe(101);

    const subscriber = await member(port, authKey);
    const channel = subscriber.subscribe('room');
    await channel.listener('subscribe').once();
    const received: unknown[] = [];
    void (async () => {
      for await (const packet of channel) received.push(packet);
    })();
    const publisher = await member(port, authKey);
    const packet = { sender: 'publisher-1', messages: [{ n: 1 }, { n: 2 }, { n: 3 }] };
    await publisher.invokePublish('room', packet);
    await waitFor(() => received.length === 1, 5000, 'the packet');
    expect(received[0]).toEqual(packet);

    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(401);
    const metrics = await (await opsFetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/socketbridge_broker_messages_total\{[^}]*\} 3\b/);
    expect(metrics).toMatch(/socketbridge_handshake_rejections_total\{[^}]*reason="auth_key"[^}]*\} 4\b/);
  });
});
