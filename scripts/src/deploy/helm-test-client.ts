#!/usr/bin/env node
/**
 * The chart's `helm test` hook (charts/socketbridge/templates/tests/test-connection.yaml), in the
 * SocketBridge image: signs a fresh client up through the publisher's REST API, connects it to the
 * workers with its token, subscribes to its own channel, publishes on that channel through the admin
 * route and exits 0 once the message arrives (1 with the reason otherwise).
 *
 *   PUBLISHER_URL=http://127.0.0.1:3000 WORKER_URL=ws://127.0.0.1:8000/socketcluster/ \
 *   API_KEY=... node scripts/dist/deploy/helm-test-client.js
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';

/** The variables this script reads; the deployment tests check the chart sets exactly these. */
export const helmTestEnv = ['PUBLISHER_URL', 'WORKER_URL', 'API_KEY', 'TIMEOUT_SECONDS'] as const;

export interface HelmTestOptions {
  publisherUrl: string;
  workerUrl: string;
  apiKey: string;
  timeoutMs: number;
  log?: (line: string) => void;
}

export function optionsFromEnv(source: NodeJS.ProcessEnv = process.env): HelmTestOptions {
  const missing = (['PUBLISHER_URL', 'WORKER_URL', 'API_KEY'] as const).filter((name) => !source[name]);
  if (missing.length) throw new Error(`missing environment: ${missing.join(', ')}`);
  const timeoutSeconds = Number(source.TIMEOUT_SECONDS ?? '60');
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new Error(`TIMEOUT_SECONDS: expected a positive number, got ${source.TIMEOUT_SECONDS}`);
  return {
    publisherUrl: String(source.PUBLISHER_URL).replace(/\/+$/, ''),
    workerUrl: String(source.WORKER_URL),
    apiKey: String(source.API_KEY),
    timeoutMs: timeoutSeconds * 1000,
  };
}

interface CreatedClient {
  clientId: string;
  channel: string;
  token: string;
}

async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: keep the text for the error message.
  }
  return { status: response.status, json };
}

/** Retries `attempt` until it resolves or the deadline passes (pods may still be becoming ready). */
async function retry<T>(what: string, deadline: number, log: (line: string) => void, attempt: () => Promise<T>): Promise<T> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      return await attempt();
    } catch (error) {
      lastError = error;
      log(`${what}: ${error instanceof Error ? error.message : String(error)}; retrying`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  throw new Error(`${what}: gave up: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
}

// The same in-memory token store as @socketbridge/client's tokenAuthEngine, kept here because the
// helm test runs in the service image, which carries socketcluster-client but not the client package.
function tokenAuthEngine(token: string) {
  let current: string | null = token;
  return {
    saveToken: async (_name: string, value: string) => (current = value),
    removeToken: async () => {
      const old = current;
      current = null;
      return old;
    },
    loadToken: async () => current,
  };
}

function clientOptions(workerUrl: string, token: string): AGClientSocket.ClientOptions {
  const url = new URL(workerUrl);
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  return {
    hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : secure ? 443 : 80,
    secure,
    ...(url.pathname !== '/' ? { path: url.pathname } : {}),
    authEngine: tokenAuthEngine(token),
    autoReconnectOptions: { initialDelay: 1000, maxDelay: 3000 },
  };
}

export async function runHelmTest(options: HelmTestOptions): Promise<{ clientId: string; channel: string; elapsedMs: number }> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  const suffix = randomUUID();

  const client = await retry('sign-up', deadline, log, async () => {
    const { status, json } = await postJson(`${options.publisherUrl}/v1/create-channel-client`, {
      name: 'helm test',
      email: `helm-test-${suffix}@socketbridge.test`,
      password: `helm-test-${suffix}`,
    });
    if (status !== 201) throw new Error(`POST /v1/create-channel-client answered ${status}: ${JSON.stringify(json)}`);
    return json as CreatedClient;
  });
  log(`signed up client ${client.clientId}, channel ${client.channel}`);

  const socket = socketClusterClient.create(clientOptions(options.workerUrl, client.token));
  try {
    const channel = socket.subscribe(client.channel);
    await retry('subscribe', deadline, log, async () => {
      const remaining = Math.max(1000, deadline - Date.now());
      await Promise.race([
        channel.listener('subscribe').once(),
        channel.listener('subscribeFail').once().then(({ error }) => Promise.reject(error)),
        new Promise((_resolve, reject) => setTimeout(() => reject(new Error('no subscription yet')), Math.min(remaining, 5000))),
      ]);
    });
    log(`subscribed to ${client.channel} through ${options.workerUrl}`);

    const marker = `helm-test-${suffix}`;
    const received = (async () => {
      for await (const data of channel) {
        const envelope = data as { data?: { marker?: string } } | null;
        if (envelope?.data?.marker === marker) return;
      }
    })();
    // Publish until the message arrives: a publish made before every member learnt of the
    // subscription is not lost for good (history has it) but is not pushed to us either.
    let arrived = false;
    void received.then(() => (arrived = true));
    while (!arrived) {
      if (Date.now() > deadline) throw new Error(`no message on ${client.channel} within ${options.timeoutMs} ms`);
      const { status, json } = await postJson(
        `${options.publisherUrl}/v1/publish`,
        { channel: client.channel, data: { marker } },
        { 'x-api-key': options.apiKey },
      );
      // A wrong key or a refused body will not get better: stop. 503 (history or cluster away) may.
      if (status === 400 || status === 401 || status === 404) throw new Error(`POST /v1/publish answered ${status}: ${JSON.stringify(json)}`);
      if (status !== 202) log(`POST /v1/publish answered ${status}: ${JSON.stringify(json)}; retrying`);
      await Promise.race([received, new Promise((resolve) => setTimeout(resolve, 3000))]);
    }
    const elapsedMs = Date.now() - started;
    log(`received the message on ${client.channel}: the whole path works (${elapsedMs} ms)`);
    return { clientId: client.clientId, channel: client.channel, elapsedMs };
  } finally {
    socket.disconnect();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await runHelmTest(optionsFromEnv());
    process.exit(0);
  } catch (error) {
    process.stderr.write(`helm test failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
