import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import type { AGClientSocket } from 'socketcluster-client';
import { SocketBridgeClient } from '@socketbridge/client';
import { TokenVerifier, withTimeout } from '@socketbridge/common';
import { LocalCluster, connectClient, handshakeRefusal, killAll, opsFetch, waitFor } from '@socketbridge/devkit';
import { LocalIdp, type Alg } from './support/idp.js';

const ALGS: Alg[] = ['RS256', 'ES256', 'EdDSA'];
const COOLDOWN_MS = 500;
const CACHE_MAX_AGE_MS = 1000;
const MAX_STALE_MS = 4000;

let acme: LocalIdp;
let flakyKid: string;
let other: LocalIdp;
let flaky: LocalIdp;
const kids = new Map<Alg, string>();
let cluster: LocalCluster;
let port: number;
const sockets: AGClientSocket[] = [];
const clients: SocketBridgeClient[] = [];

const issuerEntry = (idp: LocalIdp) => ({ issuer: idp.issuer, jwksUri: idp.jwksUri, audience: 'socketbridge' });

async function connect(token?: string): Promise<AGClientSocket> {
  const socket = await connectClient(port, { autoReconnect: false, ...(token ? { token } : {}) });
  sockets.push(socket);
  return socket;
}

/** Subscribes; resolves with the refusal, or undefined once the worker accepted. */
async function subscribe(socket: AGClientSocket, name: string): Promise<Error | undefined> {
  const channel = socket.subscribe(name);
  return withTimeout(
    Promise.race([channel.listener('subscribe').once().then(() => undefined), channel.listener('subscribeFail').once().then(({ error }) => error)]),
    5000,
    `an answer to subscribing ${name}`,
  );
}

/** Every message the socket's channel delivers, as it arrives. */
function collect(socket: AGClientSocket, name: string): unknown[] {
  const got: unknown[] = [];
  void (async () => {
    for await (const data of socket.channel(name)) got.push(data);
  })();
  return got;
}

/** Every frame the worker sends this socket, raw (what the server sent, whatever the client library then does with it). */
function frames(socket: AGClientSocket): string[] {
  const got: string[] = [];
  const ws = (socket as unknown as { transport: { socket: { addEventListener(event: string, listener: (e: { data: unknown }) => void): void } } }).transport.socket;
  ws.addEventListener('message', (e) => got.push(String(e.data)));
  return got;
}

/** Counts the socket's closes and (re)connects from now on. */
function lifecycle(socket: AGClientSocket): { closes: number; connects: number } {
  const counts = { closes: 0, connects: 0 };
  void (async () => {
    for await (const _ of socket.listener('close')) counts.closes++;
  })();
  void (async () => {
    for await (const _ of socket.listener('connect')) counts.connects++;
  })();
  return counts;
}

/** The worker's refused refreshes by reason (NaN when the series is missing). */
async function refreshRejections(reason: string): Promise<number> {
  const text = await (await opsFetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('socketbridge_refresh_rejections_total{') && l.includes(`reason="${reason}"`));
  return Number(line?.split(' ').at(-1) ?? NaN);
}

/** Whether the worker accepts a handshake with this token. */
async function accepted(token: string): Promise<boolean> {
  try {
    await handshakeRefusal(port, { token });
    return false;
  } catch (error) {
    if ((error as Error).message === 'the handshake was accepted') return true;
    throw error;
  }
}

const adaToken = (channels: string[], expiresInSeconds = 300) => acme.sign(kids.get('RS256')!, { sub: 'ada', channels }, { expiresInSeconds });

beforeAll(async () => {
  [acme, other, flaky] = await Promise.all([LocalIdp.start('acme'), LocalIdp.start('other'), LocalIdp.start('flaky')]);
  for (const alg of ALGS) kids.set(alg, await acme.addKey(alg));
  flakyKid = await flaky.addKey('ES256');
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 1,
    env: {
      SOCKETBRIDGE_JWT_ISSUERS: JSON.stringify([
        issuerEntry(acme),
        issuerEntry(other),
        // A scope-like claim: "openid ch:room.c" grants room.c.
        { ...issuerEntry(flaky), channelsClaim: 'scope', channelPrefix: 'ch:' },
      ]),
      SOCKETBRIDGE_JWKS_COOLDOWN_MS: String(COOLDOWN_MS),
      SOCKETBRIDGE_JWKS_CACHE_MAX_AGE_MS: String(CACHE_MAX_AGE_MS),
      SOCKETBRIDGE_JWKS_MAX_STALE_MS: String(MAX_STALE_MS),
      SOCKETBRIDGE_ALLOW_CLIENT_PUBLISH: 'true',
      // Token expiry is checked at each pong: a short ping interval makes it prompt.
      SOCKETBRIDGE_PING_INTERVAL_MS: '400',
    },
  });
  port = cluster.workers[0]!.port;
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  for (const socket of sockets.splice(0)) socket.disconnect();
});

afterAll(async () => {
  await cluster?.stop();
  await Promise.all([acme, other, flaky].filter(Boolean).map((idp) => idp.stop()));
  await killAll();
});

describe('tokens from an identity provider (JWKS)', () => {
  it('accepts an RS256, an ES256 and an EdDSA token, granting its channels claim and its own client channel', async () => {
    for (const alg of ALGS) {
      const token = await acme.sign(kids.get(alg)!, { sub: `ada-${alg}`, channels: ['room.a'] });
      const socket = await connect(token);
      expect(socket.authState, alg).toBe('authenticated');
      expect(await subscribe(socket, 'room.a'), alg).toBeUndefined();
      expect(await subscribe(socket, `client.ada-${alg}`), alg).toBeUndefined();
      expect((await subscribe(socket, 'room.z'))?.name, alg).toBe('SubscribeRefusedError');
      expect((await subscribe(socket, 'client.bob'))?.name, alg).toBe('SubscribeRefusedError');
    }
    // The built-in sign-up's HS256 tokens still work beside them.
    const key = new TextEncoder().encode(cluster.env.SOCKETBRIDGE_AUTH_KEY);
    const hs = await new SignJWT({ channels: ['client.bob'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setIssuedAt().setExpirationTime('5m').sign(key);
    const bob = await connect(hs);
    expect(await subscribe(bob, 'client.bob')).toBeUndefined();
  });

  it("refuses an unknown kid, another issuer's key claiming this issuer, a wrong audience and an untrusted issuer", async () => {
    const claims = { sub: 'mallory', channels: ['room.a'] };
    const unknown = await acme.addKey('RS256', false);
    const noKid = await handshakeRefusal(port, { token: await acme.sign(unknown, claims) });
    expect(noKid.name).toBe('AuthTokenInvalidError');
    expect(noKid.message).toContain('kid');

    // The second issuer publishes a key under the very kid of the first's RS256 key.
    const twin = await other.addKey('RS256', true, kids.get('RS256'));
    const forged = await acme.sign(twin, claims, { signer: other }); // iss: acme, signed with other's key
    const refusal = await handshakeRefusal(port, { token: forged });
    expect(refusal.name).toBe('AuthTokenInvalidError');
    expect(refusal.message).toContain('signature does not verify');
    // The same key is good for its own issuer: the two issuers' keys are kept apart, not refused wholesale.
    expect(await accepted(await acme.sign(twin, claims, { signer: other, issuer: other.issuer }))).toBe(true);

    const audience = await handshakeRefusal(port, { token: await acme.sign(kids.get('ES256')!, claims, { audience: 'another-app' }) });
    expect(audience.name).toBe('AuthTokenInvalidError');
    expect(audience.message).toContain('another audience');

    const untrusted = await handshakeRefusal(port, { token: await acme.sign(kids.get('ES256')!, claims, { issuer: 'http://127.0.0.1:9/realms/evil' }) });
    expect(untrusted.message).toContain('not one this worker trusts');
  });

  it('takes a rotated key after one refetch, drops the retired one, and refetches for unknown kids at most once per cooldown', async () => {
    const claims = { sub: 'ada', channels: ['room.a'] };
    const retired = kids.get('ES256')!;
    const oldToken = await acme.sign(retired, claims);
    expect(await accepted(oldToken)).toBe(true);

    // Unknown kids in a burst: the endpoint is asked at most once per cooldown (plus once per cache age), not once per token.
    const stranger = await acme.addKey('ES256', false);
    const strangerToken = await acme.sign(stranger, claims);
    const before = acme.requests;
    const started = Date.now();
    for (let i = 0; i < 20; i++) expect((await handshakeRefusal(port, { token: strangerToken })).message).toContain('kid');
    const elapsed = Date.now() - started;
    const fetched = acme.requests - before;
    expect(fetched).toBeLessThanOrEqual(2 + Math.ceil(elapsed / COOLDOWN_MS) + Math.ceil(elapsed / CACHE_MAX_AGE_MS));
    expect(fetched).toBeLessThan(20);

    // The rotation: the endpoint now serves a new ES256 key instead of the old one.
    const fresh = await acme.addKey('ES256', false);
    acme.publish([kids.get('RS256')!, kids.get('EdDSA')!, fresh]);
    kids.set('ES256', fresh);
    const newToken = await acme.sign(fresh, claims);
    await waitFor(() => accepted(newToken), 5000, 'the token with the new kid to be accepted', 100);
    await waitFor(async () => !(await accepted(oldToken)), 5000, 'the retired kid to be refused', 100);
    expect((await handshakeRefusal(port, { token: oldToken })).message).toContain('kid');
  });

  it('serves the cached keys while the endpoint is down, and refuses once they are older than the stale bound', async () => {
    const token = () => flaky.sign(flakyKid, { sub: 'carol', scope: 'openid profile ch:room.c' });
    const carol = await connect(await token());
    expect(await subscribe(carol, 'room.c')).toBeUndefined(); // granted by the scope claim, prefix removed
    expect((await subscribe(carol, 'room.a'))?.name).toBe('SubscribeRefusedError');

    flaky.down = true;
    const lastGood = flaky.lastServedAt;
    const failedBefore = flaky.requests;
    // New handshakes go on being accepted until the worker has tried the endpoint (its cache grew
    // older than its max age) and found it down: from then on, the stale keys.
    await waitFor(
      async () => {
        expect(await accepted(await token())).toBe(true);
        return flaky.requests > failedBefore;
      },
      CACHE_MAX_AGE_MS + 5000,
      'the worker to try the endpoint while it is down',
      100,
    );
    expect(await accepted(await token())).toBe(true);
    expect(Date.now() - lastGood).toBeLessThan(MAX_STALE_MS);

    // Past the stale bound: refused, with the reason.
    await waitFor(async () => !(await accepted(await token())), MAX_STALE_MS + 5000, 'tokens to be refused past the stale bound', 100);
    expect(Date.now() - lastGood).toBeGreaterThanOrEqual(MAX_STALE_MS - 200);
    const refusal = await handshakeRefusal(port, { token: await token() });
    expect(refusal.name).toBe('AuthTokenInvalidError');
    expect(refusal.message).toContain('could not be fetched');

    // The endpoint back: accepted again (after at most a cooldown).
    flaky.down = false;
    await waitFor(async () => accepted(await token()), 5000, 'the endpoint to be used again', 100);
  });
});

describe('refreshing a token on an open socket', () => {
  it('keeps the subscriptions the new token grants on the same socket, and kicks it off the one it drops', async () => {
    const ada = await connect(await adaToken(['room.a', 'room.b']));
    const id = ada.id;
    const counts = lifecycle(ada);
    const raw = frames(ada);
    expect(await subscribe(ada, 'room.a')).toBeUndefined();
    expect(await subscribe(ada, 'room.b')).toBeUndefined();
    const onA = collect(ada, 'room.a');
    const onB = collect(ada, 'room.b');
    const witness = await connect(await acme.sign(kids.get('EdDSA')!, { sub: 'wit', channels: ['room.b'] }));
    expect(await subscribe(witness, 'room.b')).toBeUndefined();
    const witnessB = collect(witness, 'room.b');
    const publisher = await connect();

    // Same channels, new token: nothing changes but the token.
    const same = await adaToken(['room.a', 'room.b']);
    await ada.authenticate(same);
    expect(ada.signedAuthToken).toBe(same);
    await publisher.invokePublish('room.a', 'a1');
    await publisher.invokePublish('room.b', 'b1');
    await waitFor(() => onA.includes('a1') && onB.includes('b1'), 5000, 'both channels to deliver after the refresh');

    // A token without room.b: kicked off room.b, still on room.a.
    const kicked = ada.listener('kickOut').once();
    const narrower = await adaToken(['room.a']);
    await ada.authenticate(narrower);
    const kick = await withTimeout(kicked, 5000, 'the kick out of room.b');
    expect(kick.channel).toBe('room.b');
    expect(ada.isSubscribed('room.b', true)).toBe(false);
    expect(ada.isSubscribed('room.a')).toBe(true);
    const rawAfterKick = raw.length;
    await publisher.invokePublish('room.b', 'b2');
    await publisher.invokePublish('room.a', 'a2');
    await waitFor(() => witnessB.includes('b2') && onA.includes('a2'), 5000, 'room.b to reach the witness and room.a to reach ada');
    // The worker sent ada nothing on room.b after the kick (the frames as they left the worker).
    expect(raw.slice(rawAfterKick).filter((f) => f.includes('"#publish"') && f.includes('"room.b"'))).toEqual([]);
    expect(onB).not.toContain('b2');

    expect(ada.id).toBe(id);
    expect(counts).toEqual({ closes: 0, connects: 0 });
    expect(ada.state).toBe(ada.OPEN);
  });

  it('a refused refresh signs the socket out (as socketcluster-server) but keeps it open; the expiry follows the new token', async () => {
    // Both start with a token that expires in 3 s; one refreshes to a long one, the other does not.
    const refreshed = await connect(await adaToken(['room.e'], 3));
    const expiring = await connect(await adaToken(['room.e'], 3));
    for (const socket of [refreshed, expiring]) expect(await subscribe(socket, 'room.e')).toBeUndefined();
    let refreshedKicks = 0;
    void (async () => {
      for await (const _ of refreshed.listener('kickOut')) refreshedKicks++;
    })();
    const expiringKick = expiring.listener('kickOut').once();
    await refreshed.authenticate(await adaToken(['room.e'], 300));
    const kick = await withTimeout(expiringKick, 8000, 'the kick of the socket whose token expired');
    expect(kick).toMatchObject({ channel: 'room.e', message: 'the token expired' });
    expect(refreshedKicks).toBe(0);
    expect(refreshed.isSubscribed('room.e')).toBe(true);

    // A bad new token (wrong audience): refused, the socket is signed out and leaves room.e, and stays
    // open; the refusal is counted (the series exists, at 0, before any).
    const badTokenBefore = await refreshRejections('bad_token');
    expect(badTokenBefore).toBeGreaterThanOrEqual(0);
    const id = refreshed.id;
    const kicked = refreshed.listener('kickOut').once();
    const bad = await acme.sign(kids.get('RS256')!, { sub: 'ada', channels: ['room.e'] }, { audience: 'another-app' });
    const error = await refreshed.authenticate(bad).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.name).toBe('AuthTokenInvalidError');
    expect((await withTimeout(kicked, 5000, 'the kick after a refused refresh')).channel).toBe('room.e');
    expect(refreshed.authState).toBe('unauthenticated');
    expect(refreshed.state).toBe(refreshed.OPEN);
    expect(refreshed.id).toBe(id);
    expect(await refreshRejections('bad_token')).toBe(badTokenBefore + 1);
  });

  it('the client library refreshes through its callback before exp, on the same socket', async () => {
    const first = await adaToken(['room.a', 'room.b'], 4);
    let second: string | undefined;
    let calls = 0;
    const kicks: Array<{ channel: string; message: string }> = [];
    const client = new SocketBridgeClient({
      port,
      token: first,
      socketOptions: { autoReconnect: false },
      refreshToken: async () => {
        calls++;
        second = await adaToken(['room.a']);
        return second;
      },
    });
    clients.push(client);
    await client.connected();
    const id = client.socket.id;
    const counts = lifecycle(client.socket);
    await client.subscribe('room.a', { onMessage: () => undefined });
    await client.subscribe('room.b', { onMessage: () => undefined, onKickOut: (kick) => kicks.push(kick) });

    // The token lives 4 s: refreshed halfway, before it expires.
    await waitFor(() => kicks.length === 1 && second !== undefined && client.socket.signedAuthToken === second, 6000, 'the refresh to take room.b away');
    expect(calls).toBe(1);
    expect(client.socket.signedAuthToken).toBe(second);
    expect(kicks[0]!.channel).toBe('room.b');
    expect(client.socket.isSubscribed('room.a')).toBe(true);
    expect(client.socket.id).toBe(id);
    expect(counts).toEqual({ closes: 0, connects: 0 });
    // The library forgot room.b: subscribing again asks the worker, which now refuses it.
    await expect(client.subscribe('room.b', { onMessage: () => undefined })).rejects.toMatchObject({ name: 'SubscribeRefusedError' });
  });
});

describe('refreshing while the client library connects', () => {
  it('a token refreshed during the handshake is the one the worker ends up with', async () => {
    const fresh = await adaToken(['room.f']);
    const client = new SocketBridgeClient({ port, token: await adaToken(['room.a']), socketOptions: { autoReconnect: false }, refreshToken: async () => fresh });
    clients.push(client);
    expect(client.socket.state).toBe(client.socket.CONNECTING);
    await client.refreshNow();
    await client.connected();
    await waitFor(() => client.socket.signedAuthToken === fresh, 5000, 'the refreshed token to be in force');
    // The worker holds the new token: it grants room.f, which the first one did not.
    await expect(client.subscribe('room.f', { onMessage: () => undefined })).resolves.toBeUndefined();
  });
});

describe('TokenVerifier against a JWKS endpoint', () => {
  it('asks the endpoint once per cooldown for unknown kids, and serves cached keys within the stale bound only', async () => {
    const idp = await LocalIdp.start('unit');
    try {
      const kid = await idp.addKey('EdDSA');
      const verifier = new TokenVerifier(new Uint8Array(32), [{ ...issuerEntry(idp), algorithms: ['EdDSA'], clientIdClaim: 'sub', channelsClaim: 'channels', allowHttp: false }], {
        cooldownMs: 60_000,
        cacheMaxAgeMs: 0, // every token wants fresh keys: the stale path is taken as soon as the endpoint fails
        maxStaleMs: 60_000,
        timeoutMs: 2000,
      });
      const good = await idp.sign(kid, { sub: 'ada', channels: ['room.a'] });
      expect((await verifier.verify(good)).authToken).toMatchObject({ sub: 'ada', channels: ['room.a'], iss: idp.issuer });

      // Stop the endpoint outright (connections refused): the last keys fetched still verify.
      const requests = idp.requests;
      await idp.stop();
      expect((await verifier.verify(good)).authTokenError).toBeNull();
      const keys = verifier.keysOf(idp.issuer)!;
      expect(keys.failures).toBe(1);
      // Within the cooldown after a failure the endpoint is not tried again, for any number of tokens.
      for (let i = 0; i < 10; i++) expect((await verifier.verify(good)).authTokenError).toBeNull();
      expect(keys.failures).toBe(1);
      expect(idp.requests).toBe(requests);

      // Keys older than the bound are not used.
      keys.cache.uat = Date.now() - 60_001;
      const refused = await verifier.verify(good);
      expect(refused.authTokenError?.name).toBe('AuthTokenInvalidError');
      expect(refused.authTokenError?.message).toContain('could not be fetched');
    } finally {
      await idp.stop().catch(() => undefined);
    }
  });
});
