import { describe, expect, it } from 'vitest';
import { CLIENT_EVENTS, parseControl, parseQueryReply, type ClientSocket, type PresenceNotice, type SocketBroker } from '@socketbridge/common';
import { ChannelRoster, parsePresenceNotice } from '../../src/roster.js';

// The roster reads a socket's token and state and writes through send: a plain object with those is the socket it sees.
function fakeSocket(sub?: string) {
  const sent: unknown[] = [];
  const socket = { state: 'open', authToken: sub === undefined ? null : { sub, channels: [] }, send: (packet: unknown) => sent.push(packet) };
  return { socket: socket as unknown as ClientSocket, sent, raw: socket };
}

const engine: SocketBroker = { subscribeSocket: async () => undefined, unsubscribeSocket: async () => undefined, invokePublish: async () => undefined };

function roster() {
  const announced: PresenceNotice[] = [];
  const r = new ChannelRoster({ presence: (channel) => channel.startsWith('room.'), announce: (n) => announced.push(n) });
  return { r, broker: r.wrap(engine), announced };
}

describe('ChannelRoster (a worker\'s channel info and presence)', () => {
  it('counts sockets, lists distinct clients of presence channels only, capped, and announces joins and leaves', async () => {
    const { r, broker, announced } = roster();
    const ada1 = fakeSocket('ada');
    const ada2 = fakeSocket('ada');
    const bob = fakeSocket('bob');
    const anonymous = fakeSocket();
    for (const s of [anonymous, ada1, ada2, bob]) await broker.subscribeSocket(s.socket, 'room.a');
    await broker.subscribeSocket(ada1.socket, 'room.a'); // a repeated #subscribe counts once
    await broker.subscribeSocket(bob.socket, 'quiet.a');
    expect(r.count('room.a')).toBe(4);
    expect(r.answer({ id: 'q', channel: 'room.a', clients: true, limit: 10 }, 'w')).toEqual({ id: 'q', instanceId: 'w', subscribers: 4, clients: ['ada', 'bob'] });
    expect(r.answer({ id: 'q', channel: 'room.a', clients: true, limit: 1 }, 'w')).toEqual({ id: 'q', instanceId: 'w', subscribers: 4, clients: ['ada'], truncated: true });
    // No presence on the policy: the count, never the clients.
    expect(r.answer({ id: 'q', channel: 'quiet.a', clients: true, limit: 10 }, 'w')).toEqual({ id: 'q', instanceId: 'w', subscribers: 1 });
    expect(announced).toEqual([
      { channel: 'room.a', clientId: 'ada', action: 'join' },
      { channel: 'room.a', clientId: 'ada', action: 'join' },
      { channel: 'room.a', clientId: 'bob', action: 'join' },
    ]);
    // Local subscribers heard it too, the anonymous one included, as the client event.
    expect(anonymous.sent).toContainEqual({ event: CLIENT_EVENTS.presence, data: { channel: 'room.a', clientId: 'bob', action: 'join' } });

    // A leave names the client the socket joined as, even after its token was dropped (sign-out, expiry).
    bob.raw.authToken = null;
    await broker.unsubscribeSocket(bob.socket, 'room.a');
    await broker.unsubscribeSocket(bob.socket, 'room.a'); // not subscribed any more: nothing
    expect(announced.at(-1)).toEqual({ channel: 'room.a', clientId: 'bob', action: 'leave' });
    expect(announced).toHaveLength(4);
    expect(r.count('room.a')).toBe(3);
    for (const s of [ada1, ada2, anonymous]) await broker.unsubscribeSocket(s.socket, 'room.a');
    expect(r.count('room.a')).toBe(0);
  });

  it('a refresh naming another client: leaves as the old and joins as the new where the socket stays, only the old leaves where it is kicked', async () => {
    const announced: PresenceNotice[] = [];
    const r = new ChannelRoster({ presence: () => true, holds: (_socket, channel) => channel !== 'room.private', announce: (n) => announced.push(n) });
    const broker = r.wrap(engine);
    const socket = fakeSocket('ada');
    const channels = new Set(['room.a', 'room.private']);
    Object.assign(socket.raw, { channels });
    for (const channel of channels) await broker.subscribeSocket(socket.socket, channel);
    announced.length = 0;
    socket.raw.authToken = { sub: 'bob', channels: [] };
    r.reauthenticated(socket.socket);
    expect(announced).toEqual([
      { channel: 'room.a', clientId: 'ada', action: 'leave' },
      { channel: 'room.a', clientId: 'bob', action: 'join' },
    ]);
    // The socket server then kicks it off room.private: the leave names Ada, never Bob.
    await broker.unsubscribeSocket(socket.socket, 'room.private');
    expect(announced.at(-1)).toEqual({ channel: 'room.private', clientId: 'ada', action: 'leave' });
    expect(r.answer({ id: 'q', channel: 'room.a', clients: true, limit: 10 }, 'w').clients).toEqual(['bob']);
    r.reauthenticated(socket.socket); // the same client again: nothing
    expect(announced).toHaveLength(3);
  });

  it('sends the leaves of a worker that was live and is no longer, once; not of one never seen live', async () => {
    const { r, broker } = roster();
    const eve = fakeSocket('eve');
    await broker.subscribeSocket(eve.socket, 'room.a');
    eve.sent.length = 0;
    r.received({ channel: 'room.a', clientId: 'ada', action: 'join' }, 'w1');
    r.received({ channel: 'room.a', clientId: 'ada', action: 'join' }, 'w1'); // two of Ada's sockets
    r.received({ channel: 'room.a', clientId: 'bob', action: 'join' }, 'w1');
    r.received({ channel: 'room.a', clientId: 'bob', action: 'leave' }, 'w1');
    r.received({ channel: 'room.a', clientId: 'cyd', action: 'join' }, 'w2');
    expect(eve.sent).toHaveLength(5);
    // w2's notices came before its first liveness entry: not dead, just new (within the grace).
    expect(r.liveWorkers(new Set(['w0', 'w1']), 1000)).toBe(0);
    expect(r.liveWorkers(new Set(['w0', 'w2']), 1000)).toBe(2);
    expect(eve.sent.slice(5)).toEqual([
      { event: CLIENT_EVENTS.presence, data: { channel: 'room.a', clientId: 'ada', action: 'leave' } },
      { event: CLIENT_EVENTS.presence, data: { channel: 'room.a', clientId: 'ada', action: 'leave' } },
    ]);
    expect(r.liveWorkers(new Set(['w0', 'w2']), 1000)).toBe(0);
    expect(r.liveWorkers(new Set(['w0']), 1000)).toBe(1); // cyd, once w2 had been seen live and went
    // A worker never seen live: its joins leave once the grace is over.
    r.received({ channel: 'room.a', clientId: 'dan', action: 'join' }, 'w3');
    expect(r.liveWorkers(new Set(['w0']), 1000)).toBe(0);
    expect(r.liveWorkers(new Set(['w0']), 1000, Date.now() + 1001)).toBe(1);
  });

  it('keys channels and clients by client input without a prototype', async () => {
    const { r, broker } = roster();
    const proto = fakeSocket('__proto__');
    await broker.subscribeSocket(proto.socket, 'room.constructor');
    expect(r.answer({ id: 'q', channel: 'room.constructor', clients: true, limit: 10 }, 'w').clients).toEqual(['__proto__']);
    expect(r.count('toString')).toBe(0);
  });

  it('reads cluster messages of the right shape only', () => {
    const notice = { channel: 'room.a', clientId: 'ada', action: 'join', worker: 'w1' };
    expect(parsePresenceNotice(notice)).toEqual(notice);
    for (const bad of [null, [], {}, { ...notice, action: 'wave' }, { ...notice, channel: 1 }, { ...notice, worker: undefined }]) expect(parsePresenceNotice(bad)).toBeUndefined();
    const query = { type: 'query', id: 'q1', channel: 'room.a', replyTo: '#sb.reply.p1', clients: true, limit: 10 };
    expect(parseControl(query)).toEqual(query);
    for (const bad of [{ ...query, replyTo: 'room.a' }, { ...query, limit: 0 }, { ...query, limit: 1001 }, { ...query, clients: 'yes' }, { ...query, id: '' }]) {
      expect(parseControl(bad)).toBeUndefined();
    }
    expect(parseQueryReply({ id: 'q1', instanceId: 'w', subscribers: 2, clients: ['a'] })).toEqual({ id: 'q1', instanceId: 'w', subscribers: 2, clients: ['a'] });
    for (const bad of [{ id: 'q1', instanceId: 'w', subscribers: -1 }, { id: 'q1', instanceId: 'w', subscribers: 1, clients: [1] }, { id: 'q1', subscribers: 1 }]) {
      expect(parseQueryReply(bad)).toBeUndefined();
    }
  });
});
