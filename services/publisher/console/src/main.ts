/**
 * The web console's page script (index.html): the cluster, the bridges and a live channel tail,
 * refreshed every 2 s. It calls the publisher with the admin key, which it keeps in memory only.
 */
import { SocketBridgeClient } from '@socketbridge/client';
import type { Topology } from '../../src/console/topology.js';
import { byId, el } from './dom.js';
import { bridgesView, clusterView, type BridgesAnswer } from './views.js';

const REFRESH_MS = 2000;
const TAIL_LINES = 200;

const params = new URLSearchParams(location.search);
let key = params.get('key') ?? '';
if (params.has('key')) {
  // The key stays in this page's memory only: off the address bar and out of the history.
  params.delete('key');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : ''));
}

const keyForm = byId<HTMLFormElement>('key-form');
const keyInput = byId<HTMLInputElement>('key-input');
const tailForm = byId<HTMLFormElement>('tail-form');
const tailChannel = byId<HTMLInputElement>('tail-channel');
const tailUrl = byId<HTMLInputElement>('tail-url');
const tailStart = byId<HTMLButtonElement>('tail-start');
const tailStop = byId<HTMLButtonElement>('tail-stop');
const tailStatus = byId('tail-status');
const tail = byId<HTMLOListElement>('tail');

let tailUrlTouched = false;
let client: SocketBridgeClient | null = null;

function setStatus(text: string, kind: 'ok' | 'bad'): void {
  const status = byId('status');
  status.textContent = text;
  status.className = `status ${kind}`;
}

async function api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'x-api-key': key };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body) });
  const answer = (await response.json().catch(() => ({}))) as T & { message?: string };
  if (response.status === 401) {
    keyForm.hidden = false;
    throw new Error('the admin API key was refused');
  }
  if (!response.ok) throw new Error(answer.message ?? `HTTP ${response.status}`);
  return answer;
}

async function refresh(): Promise<void> {
  if (!key) {
    keyForm.hidden = false;
    setStatus('enter the admin API key', 'bad');
    return;
  }
  try {
    const topology = await api<Topology>('GET', '/console/api/cluster');
    byId('cluster').replaceChildren(...clusterView(topology, (uri) => {
      tailUrl.value = uri;
      tailUrlTouched = true;
    }));
    if (!tailUrlTouched && topology.tailUrl && !tailUrl.value) tailUrl.value = topology.tailUrl;
    setStatus(`cluster: ${topology.brokers.length} broker(s), ${topology.workers.length} worker(s) · ${new Date(topology.at).toLocaleTimeString()}`, 'ok');
    keyForm.hidden = true;
  } catch (error) {
    setStatus((error as Error).message, 'bad');
    return;
  }
  try {
    byId('bridges').replaceChildren(...bridgesView(await api<BridgesAnswer>('GET', '/v1/bridges')));
  } catch (error) {
    byId('bridges').textContent = `bridges: ${(error as Error).message}`;
  }
}

function addLine(className: 'msg' | 'gap', time: string, offset: string, text: string): void {
  tail.prepend(el('li', { class: className }, [el('time', { text: time }), el('span', { class: 'offset', text: offset }), el('span', { class: 'data', text })]));
  while (tail.children.length > TAIL_LINES) tail.lastElementChild?.remove();
}

function stopTail(): void {
  client?.close();
  client = null;
  tailStart.disabled = false;
  tailStop.disabled = true;
}

async function startTail(channel: string, url: string): Promise<void> {
  stopTail();
  tail.textContent = '';
  let received = 0;
  const target = new URL(url);
  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  const minted = await api<{ token: string }>('POST', '/v1/console/token', { channel });
  client = new SocketBridgeClient({
    hostname: target.hostname,
    port: Number(target.port) || (secure ? 443 : 80),
    secure,
    path: target.pathname && target.pathname !== '/' ? target.pathname : '/socketcluster/',
    token: minted.token,
  });
  tailStart.disabled = true;
  tailStop.disabled = false;
  tailStatus.textContent = `connecting to ${url}…`;
  await client.connected();
  await client.subscribe(channel, {
    onMessage: (envelope) => {
      received++;
      tailStatus.textContent = `tailing ${channel} through ${url}: ${received} message(s)`;
      addLine('msg', new Date(envelope.ts).toLocaleTimeString(), envelope.offset, JSON.stringify(envelope.data));
    },
    onGap: (gap) => addLine('gap', new Date().toLocaleTimeString(), gap.since, `gap: ${gap.reason}`),
  });
  tailStatus.textContent = `tailing ${channel} through ${url}: waiting for messages`;
  tail.setAttribute('data-channel', channel);
}

keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  key = keyInput.value.trim();
  keyInput.value = '';
  void refresh();
});
tailUrl.addEventListener('input', () => {
  tailUrlTouched = true;
});
tailForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const url = tailUrl.value.trim();
  if (!url) {
    tailStatus.textContent = 'no worker URL: the cluster lists no reachable worker';
    return;
  }
  startTail(tailChannel.value.trim(), url).catch((error: unknown) => {
    stopTail();
    tailStatus.textContent = `tail failed: ${(error as Error).message}`;
  });
});
tailStop.addEventListener('click', () => {
  stopTail();
  tailStatus.textContent = 'stopped';
});

void refresh();
setInterval(() => void refresh(), REFRESH_MS);
