#!/usr/bin/env node
// A plain upstream SCC worker, as SocketCluster's boilerplate builds one: socketcluster-server with
// scc-broker-client attached, nothing of ours in between. Interop tests run it beside our worker.
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import socketClusterServer from 'socketcluster-server';
import sccBrokerClient from 'scc-broker-client';
import { announceListening } from '@socketbridge/common';

const httpServer = createServer();
const agServer = socketClusterServer.attach(httpServer);
let brokerURIs: string[] = [];
let workerURIs: string[] = [];

httpServer.on('request', (req, res) => {
  if ((req.url ?? '').startsWith(agServer.getPath())) return;
  res.writeHead(req.url === '/cluster' ? 200 : 404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ instanceId: 'upstream', brokerURIs, workerURIs }));
});

httpServer.listen(Number(process.env.SOCKETCLUSTER_PORT ?? 0), () => {
  const address = httpServer.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const client = sccBrokerClient.attach(agServer.brokerEngine, {
    instanceId: randomUUID(),
    instancePort: port,
    stateServerHost: process.env.SCC_STATE_SERVER_HOST ?? '127.0.0.1',
    stateServerPort: Number(process.env.SCC_STATE_SERVER_PORT ?? 7777),
    authKey: process.env.SCC_AUTH_KEY ?? null,
    brokerRetryDelay: Number(process.env.SCC_BROKER_CLIENT_RETRY_DELAY ?? 2000),
  });
  void (async () => {
    for await (const { brokerURIs: uris } of client.listener('updateBrokers')) brokerURIs = [...uris].sort();
  })();
  void (async () => {
    for await (const { workerURIs: uris } of client.listener('updateWorkers')) workerURIs = [...uris].sort();
  })();
  void (async () => {
    for await (const _error of client.listener('error')) {
      // Upstream reports every broker hiccup here; the test reads delivery, not these.
    }
  })();
  announceListening(port);
});
process.on('SIGTERM', () => process.exit(0));
