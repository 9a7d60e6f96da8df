/** The cluster and bridge views: the answers of `GET /console/api/cluster` and `GET /v1/bridges` as DOM. */
import type { Bridge, BridgeQueue } from '@socketbridge/common/bridges';
import type { MemberView, Topology } from '../../src/console/topology.js';
import { el, type Child } from './dom.js';

/** `GET /v1/bridges`: the registry's bridges and this publisher's consumer (routes/bridges.ts). */
export interface BridgesAnswer {
  bridges: Bridge[];
  consumer: { consuming: boolean; connected: boolean; queues: string[] };
}

type Kind = 'state' | 'broker' | 'worker' | 'publisher';
type CardMember = Pick<MemberView, 'reachable' | 'error'> & { uri: string; instanceId?: string };

function stat(value: number | string | undefined, label: string): HTMLElement {
  return el('div', { 'data-stat': label }, [el('b', { text: value === undefined ? '–' : String(value) }), el('span', { text: label })]);
}

function memberCard(kind: Kind, member: CardMember, stats: HTMLElement[] | null, extra?: Child): HTMLElement {
  const down = !member.reachable;
  return el('div', { class: `member${down ? ' down' : ''}`, 'data-kind': kind, 'data-uri': member.uri }, [
    el('div', { class: 'uri', text: member.uri }),
    member.instanceId && el('div', { class: 'id', text: member.instanceId }),
    stats && el('div', { class: 'stats' }, stats),
    down && el('div', { class: 'muted', text: `unreachable: ${member.error ?? ''}` }),
    extra,
  ]);
}

function tier(name: string, cards: HTMLElement[]): HTMLElement {
  return el('div', { class: 'tier' }, [el('div', { class: 'tier-name', text: name }), ...(cards.length ? cards : [el('div', { class: 'muted', text: 'none' })])]);
}

/** The cluster's tiers; `tailThrough` is called with a worker's URI when its button is pressed. */
export function clusterView(t: Topology, tailThrough: (uri: string) => void): HTMLElement[] {
  const state = t.state;
  return [
    tier('state', [
      memberCard('state', { uri: state.url, reachable: state.reachable, error: state.error },
        state.reachable ? [stat(state.ready ? 'ready' : 'starting', 'state'), stat(t.brokers.length, 'brokers'), stat(t.workers.length, 'workers')] : null),
    ]),
    tier('brokers', t.brokers.map((b) => memberCard('broker', b, [stat(b.connections, 'members'), stat(b.subscriptions, 'channels'), stat(b.messages, 'messages')]))),
    tier('workers', t.workers.map((w) =>
      memberCard('worker', w, [stat(w.connections, 'connections'), stat(w.subscriptions, 'subscriptions'), stat(w.deliveries, 'deliveries')],
        el('button', { type: 'button', text: 'tail through this worker' }, [], () => tailThrough(w.uri))),
    )),
    tier('publishers', t.publishers.map((p) => memberCard('publisher', p, null, p.self && el('div', { class: 'muted', text: 'serving this console' })))),
  ];
}

const bindingsText = (queue: BridgeQueue) => queue.bindings.map((b) => `${b.exchange} ${b.routingKey}`).join(', ');

function queueRow(queue: string, bridge: string, spec: BridgeQueue | undefined, state: string): HTMLElement {
  return el('tr', { 'data-queue': queue }, [
    el('td', { text: bridge }),
    el('td', {}, [el('code', { text: queue })]),
    el('td', { text: spec ? bindingsText(spec) : '' }),
    el('td', {}, [el('code', { text: spec ? spec.route.channel : '{routingKey}' })]),
    el('td', { text: state }),
  ]);
}

/** The queues this publisher consumes (the default queue has no bridge), then the bridges' other queues. */
export function bridgesView(answer: BridgesAnswer): HTMLElement[] {
  const consumed = answer.consumer.queues;
  const rows = consumed.map((queue) => {
    const bridge = answer.bridges.find((b) => b.queues.some((q) => q.name === queue));
    return queueRow(queue, bridge ? bridge.name : '(default)', bridge?.queues.find((q) => q.name === queue), 'consuming');
  });
  for (const bridge of answer.bridges) {
    for (const queue of bridge.queues) if (!consumed.includes(queue.name)) rows.push(queueRow(queue.name, bridge.name, queue, 'not consumed here'));
  }
  const head = el('tr', {}, ['bridge', 'queue', 'bindings', 'channel', 'state'].map((h) => el('th', { text: h })));
  return [
    el('div', { class: 'muted', text: `RabbitMQ ${answer.consumer.connected ? 'connected' : 'not connected'}` }),
    el('table', {}, [el('thead', {}, [head]), el('tbody', {}, rows)]),
  ];
}
