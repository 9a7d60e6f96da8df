import { describe, expect, it } from 'vitest';
import { CHANNEL_NAME, DEFAULT_POLICIES, compareOffsets, decideSubscribe, findPolicy, matchPattern, renderTemplate, type ChannelPolicy } from '../../src/channels.js';

describe('matchPattern', () => {
  it('matches literals segment by segment, and nothing longer or shorter', () => {
    expect(matchPattern('prices.eur', 'prices.eur')).toEqual({});
    expect(matchPattern('prices.eur', 'prices.usd')).toBeUndefined();
    expect(matchPattern('prices.eur', 'prices.eur.spot')).toBeUndefined();
    expect(matchPattern('prices.eur', 'prices')).toBeUndefined();
  });

  it('takes any one non-empty segment for * and captures {name}', () => {
    expect(matchPattern('prices.*', 'prices.eur')).toEqual({});
    expect(matchPattern('prices.*', 'prices.')).toBeUndefined();
    expect(matchPattern('client.{clientId}', 'client.42')).toEqual({ clientId: '42' });
    expect(matchPattern('orders.{region}.{id}', 'orders.eu.7')).toEqual({ region: 'eu', id: '7' });
  });

  it('takes any rest, even none, for a final # only', () => {
    expect(matchPattern('logs.#', 'logs')).toEqual({});
    expect(matchPattern('logs.#', 'logs.a.b.c')).toEqual({});
    // A # that is not last is a literal segment named "#".
    expect(matchPattern('a.#.b', 'a.x.b')).toBeUndefined();
  });

  it('captures into an object without a prototype, so clientId is never inherited', () => {
    const params = matchPattern('x.{a}', 'x.1')!;
    expect(Object.getPrototypeOf(params)).toBeNull();
    expect(matchPattern('x.*', 'x.1')!['clientId']).toBeUndefined();
  });
});

describe('findPolicy', () => {
  it('takes the first match in order', () => {
    const policies: ChannelPolicy[] = [
      { pattern: 'news.sport', access: 'authenticated' },
      { pattern: 'news.*', access: 'public' },
    ];
    expect(findPolicy(policies, 'news.sport')?.policy.access).toBe('authenticated');
    expect(findPolicy(policies, 'news.tech')?.policy.access).toBe('public');
    expect(findPolicy(policies, 'weather')).toBeUndefined();
  });
});

describe('decideSubscribe', () => {
  const policies: ChannelPolicy[] = [...DEFAULT_POLICIES, { pattern: 'prices.*', access: 'public' }];
  const ada = { sub: 'ada', channels: ['client.ada', 'vip.ada'] };

  it('lets anyone onto a public channel', () => {
    expect(decideSubscribe(policies, 'prices.eur', undefined)).toEqual({ allowed: true });
  });

  it('wants a signed-in client for an authenticated channel', () => {
    expect(decideSubscribe(policies, 'broadcast', undefined)).toMatchObject({ allowed: false, reason: 'unauthenticated' });
    expect(decideSubscribe(policies, 'broadcast', ada)).toEqual({ allowed: true });
  });

  it('lets only the owner onto an owner channel', () => {
    expect(decideSubscribe(policies, 'client.ada', ada)).toEqual({ allowed: true });
    expect(decideSubscribe(policies, 'client.bob', ada)).toMatchObject({ allowed: false, reason: 'not_owner' });
    expect(decideSubscribe(policies, 'client.bob', undefined)).toMatchObject({ allowed: false, reason: 'unauthenticated' });
  });

  it('grants a channel the token names even where no policy covers it', () => {
    expect(decideSubscribe(policies, 'vip.ada', ada)).toEqual({ allowed: true });
    expect(decideSubscribe(policies, 'vip.ada', undefined)).toMatchObject({ allowed: false, reason: 'no_policy' });
  });

  it('refuses bad channel names before any policy, Object.prototype names included', () => {
    for (const channel of ['', 'a b', 'x'.repeat(201), '__proto__', 'constructor', 'toString']) {
      expect(decideSubscribe([{ pattern: '#', access: 'public' }], channel, ada)).toMatchObject({ allowed: false, reason: 'bad_channel' });
    }
    expect(CHANNEL_NAME.test('x'.repeat(200))).toBe(true);
  });
});

describe('renderTemplate', () => {
  const fields = { routingKey: 'eur', headers: { region: 'eu', n: 3, nested: { a: 'b' } }, body: { id: 7, ok: true, list: [1] } };

  it('fills routingKey, headers.<name> and body.<field> with strings, numbers and booleans', () => {
    expect(renderTemplate('prices.{routingKey}', fields)).toEqual({ ok: true, value: 'prices.eur' });
    expect(renderTemplate('orders.{headers.region}.{body.id}.{body.ok}.{headers.n}', fields)).toEqual({ ok: true, value: 'orders.eu.7.true.3' });
    expect(renderTemplate('x.{headers.nested.a}', fields)).toEqual({ ok: true, value: 'x.b' });
  });

  it('names the first field that is missing or not a scalar', () => {
    expect(renderTemplate('a.{headers.missing}.{body.gone}', fields)).toEqual({ ok: false, missing: 'headers.missing' });
    expect(renderTemplate('a.{body.list}', fields)).toEqual({ ok: false, missing: 'body.list' });
    expect(renderTemplate('a.{headers}', fields)).toEqual({ ok: false, missing: 'headers' });
    expect(renderTemplate('a.{other.x}', fields)).toEqual({ ok: false, missing: 'other.x' });
  });

  it('never reads inherited members of a body', () => {
    expect(renderTemplate('a.{body.constructor}', fields)).toEqual({ ok: false, missing: 'body.constructor' });
    expect(renderTemplate('a.{body.toString}', fields)).toEqual({ ok: false, missing: 'body.toString' });
  });
});

describe('compareOffsets', () => {
  it('orders by milliseconds numerically, then by sequence', () => {
    const sorted = ['10-1', '9-5', '100-0', '10-0', '10-10'].sort(compareOffsets);
    expect(sorted).toEqual(['9-5', '10-0', '10-1', '10-10', '100-0']);
    expect(compareOffsets('1700000000000-3', '1700000000000-3')).toBe(0);
  });
});
