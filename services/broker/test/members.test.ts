import { afterAll, describe, expect, it } from 'vitest';
import type { AGClientSocket } from 'socketcluster-client';
import { LocalCluster, connectClient, handshakeRefusal, killAll, waitFor } from '@socketbridge/devkit';

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

    for (const query of [{ authKey: 'wrong' }, {}] as Array<Record<string, string>>) {
      expect(await handshakeRefusal(port, { query })).toMatchObject({ name: 'BadClusterAuthError' });
    }

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

    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/socketbridge_broker_messages_total\{[^}]*\} 3\b/);
    expect(metrics).toMatch(/socketbridge_handshake_rejections_total\{[^}]*reason="auth_key"[^}]*\} 2\b/);
  });
});
