import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';
import { CLOSE_CODES, CONTROL_CHANNEL, withTimeout } from '@socketbridge/common';
import { connectClient, handshakeRefusal, startPublisherTestbed, waitFor, type PublisherApi, type PublisherTestbed } from '@socketbridge/devkit';

// The server API's disconnect (#17): the publisher publishes an order on the cluster's control
// channel, every worker closes the client's sockets. Real processes: 2 brokers, 2 workers, a publisher.

// Longer than the sign-up's token lifetime (one day), as an identity provider's tokens may live.
const REVOCATION_TTL_SECONDS = 7 * 86400;
let testbed: PublisherTestbed;
let api: PublisherApi;
const sockets: AGClientSocket[] = [];
const fastReconnect = { initialDelay: 100, randomness: 0, multiplier: 1, maxDelay: 200 };

beforeAll(async () => {
  testbed = await startPublisherTestbed('server-api', {
    brokers: 2,
    workers: 2,
    env: { SOCKETBRIDGE_ALLOW_CLIENT_PUBLISH: 'true', SOCKETBRIDGE_REVOCATION_TTL_SECONDS: String(REVOCATION_TTL_SECONDS) },
  });
  api = testbed.api;
  // Every worker's control subscription is confirmed by its shard: from here an order reaches it.
  await waitFor(
    async () => (await Promise.all(testbed.cluster.workers.map((w) => testbed.cluster.workerView(w)))).every((view) => view.controlSubscribed === true),
    20000,
    'every worker to subscribe to the control channel',
  );
}, 60000);

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.disconnect();
});

afterAll(async () => {
  await testbed?.teardown();
});

async function open(workerIndex: number, token: string, autoReconnect = true): Promise<AGClientSocket> {
  const socket = await connectClient(testbed.cluster.workers[workerIndex]!.port, { token, autoReconnect, autoReconnectOptions: fastReconnect });
  sockets.push(socket);
  return socket;
}

/** Resolves with the code of the socket's next close. */
const nextClose = (socket: AGClientSocket) =>
  withTimeout(socket.listener('close').once().then(({ code }) => code), 5000, 'the socket to close');

describe('POST /v1/clients/:clientId/disconnect', () => {
  it('closes every socket of the client on both workers within a second, with 4501, and they stay closed; other clients stay', async () => {
    const ada = await api.createClient('Ada');
    const bob = await api.createClient('Bob');
    const adaSockets = [await open(0, ada.token), await open(1, ada.token), await open(1, ada.token)];
    const bobSocket = await open(0, bob.token);
    const closes = adaSockets.map((socket) => nextClose(socket).then((code) => ({ code, at: Date.now() })));

    const started = Date.now();
    const { status, body } = await api.request('POST', `/v1/clients/${ada.clientId}/disconnect`, {});
    expect(status).toBe(202);
    expect(body).toEqual({ clientId: ada.clientId, reconnect: false });
    for (const { code, at } of await Promise.all(closes)) {
      expect(code).toBe(CLOSE_CODES.disconnectedNoReconnect);
      expect(at - started).toBeLessThan(1000);
    }
    // socketcluster-client schedules no reconnect at 4500 and above.
    for (const socket of adaSockets) {
      expect(socket.state).toBe(socket.CLOSED);
      expect(socket.pendingReconnect).toBe(false);
    }
    expect(bobSocket.state).toBe(bobSocket.OPEN);
  });

  it('with reconnect: true closes with 4102 and the client comes back by itself', async () => {
    const ada = await api.createClient('Ada');
    const adaSockets = [await open(0, ada.token), await open(1, ada.token)];
    const comeBack = adaSockets.map(async (socket) => {
      const code = await nextClose(socket);
      await withTimeout(socket.listener('connect').once(), 5000, 'the client to reconnect');
      return code;
    });
    const started = Date.now();
    const closedInTime = adaSockets.map((socket) => nextClose(socket).then(() => Date.now() - started));
    expect((await api.request('POST', `/v1/clients/${ada.clientId}/disconnect`, { reconnect: true })).status).toBe(202);
    for (const elapsed of await Promise.all(closedInTime)) expect(elapsed).toBeLessThan(1000);
    expect(await Promise.all(comeBack)).toEqual([CLOSE_CODES.disconnectedReconnect, CLOSE_CODES.disconnectedReconnect]);
    for (const socket of adaSockets) expect(socket.state).toBe(socket.OPEN);
  });

  it('refuses without the admin key (401) and a bad body or client id (400), with a reason', async () => {
    const ada = await api.createClient('Ada');
    const socket = await open(0, ada.token);
    const anonymous = await testbed.anonymous.request('POST', `/v1/clients/${ada.clientId}/disconnect`, {});
    expect(anonymous.status).toBe(401);
    const wrongKey = await testbed.anonymous.request('POST', `/v1/clients/${ada.clientId}/disconnect`, {}, { 'x-api-key': 'nope' });
    expect(wrongKey.status).toBe(401);
    const cases: Array<[string, string, unknown, RegExp]> = [
      ['reconnect not a boolean', ada.clientId, { reconnect: 'yes' }, /reconnect/],
      ['extra field', ada.clientId, { reconnect: true, everyone: true }, /additional/i],
      ['array body', ada.clientId, [true], /object/],
      ['malformed JSON', ada.clientId, '{"reconnect": ', 400 as unknown as RegExp],
    ];
    for (const [what, clientId, body, reason] of cases) {
      const answer = await api.request<{ error: string; message: string }>('POST', `/v1/clients/${clientId}/disconnect`, body);
      expect(answer.status, what).toBe(400);
      expect(answer.body.error, what).toBe('BadRequest');
      if (reason instanceof RegExp) expect(answer.body.message, what).toMatch(reason);
    }
    // An id one character over the longest (200) gets the schema's 400; one past Fastify's path
    // parameter limit (twice that) is refused before the route with 414.
    const long = await api.request<{ error: string; message: string }>('POST', `/v1/clients/${'x'.repeat(201)}/disconnect`, {});
    expect(long.status).toBe(400);
    expect(long.body.message).toMatch(/clientId/);
    const huge = await api.request<{ error: string; message: string }>('POST', `/v1/clients/${'x'.repeat(401)}/disconnect`, {});
    expect(huge.status).toBe(414);
    expect(huge.body.message).toBeTruthy();
    // None of it reached the workers.
    expect(socket.state).toBe(socket.OPEN);
    expect((await socket.invoke('no-such-procedure', {}).catch((error: Error) => error)).name).toBe('InvalidActionError');
  });

  it('keeps the control channel to cluster members: a client can neither subscribe nor publish there', async () => {
    const ada = await api.createClient('Ada');
    const socket = await open(0, ada.token);
    const channel = socket.subscribe(CONTROL_CHANNEL);
    const refusal = await withTimeout(channel.listener('subscribeFail').once(), 5000, 'the subscription to be refused');
    expect(refusal.error.name).toBe('SubscribeRefusedError');
    const published = await socket.invokePublish(CONTROL_CHANNEL, { type: 'disconnect', clientId: ada.clientId, reconnect: false }).catch((error: Error) => error);
    expect((published as Error).name).toBe('PublishRefusedError');
    // A client publishing the order on an ordinary channel orders nothing either.
    await socket.invokePublish(`client.${ada.clientId}`, { type: 'disconnect', clientId: ada.clientId, reconnect: false });
    expect(socket.state).toBe(socket.OPEN);
  });

  it('ignores unknown and malformed control messages, and keeps acting on good ones', async () => {
    const ada = await api.createClient('Ada');
    const adaSockets = [await open(0, ada.token), await open(1, ada.token)];
    // A cluster member (the cluster key) publishes junk on the control channel, at every shard.
    const junk = [null, 'x', 42, [], {}, { type: 'explode' }, { type: 'disconnect' }, { type: 'disconnect', clientId: 42, reconnect: false },
      { type: 'disconnect', clientId: ada.clientId, reconnect: 'no' }, { type: 'disconnect', clientId: '', reconnect: true }, { ['__proto__']: { type: 'disconnect' } }];
    for (const broker of testbed.cluster.brokers) {
      const member = socketClusterClient.create({ hostname: '127.0.0.1', port: broker.port, autoReconnect: false, query: { authKey: testbed.cluster.env.SCC_AUTH_KEY! } });
      try {
        await withTimeout(member.listener('connect').once(), 5000, 'a member connection to the broker');
        await member.invokePublish(CONTROL_CHANNEL, { sender: 'server-api-test', messages: junk });
      } finally {
        member.disconnect();
      }
    }
    // The same path then carries a good order: both sockets close with its code, so the junk
    // before it was read and dropped without harm (and both workers still run).
    const closes = adaSockets.map(nextClose);
    expect((await api.request('POST', `/v1/clients/${ada.clientId}/disconnect`, { reconnect: false })).status).toBe(202);
    expect(await Promise.all(closes)).toEqual([CLOSE_CODES.disconnectedNoReconnect, CLOSE_CODES.disconnectedNoReconnect]);
    for (const worker of testbed.cluster.workers) expect(worker.running).toBe(true);
    const other = await api.createClient('Other');
    expect((await open(1, other.token)).state).toBe('open');
  });

  it('answers 202 for a client with no socket open anywhere (it may come from an identity provider)', async () => {
    const { status, body } = await api.request('POST', '/v1/clients/nobody-here/disconnect', {});
    expect(status).toBe(202);
    expect(body).toEqual({ clientId: 'nobody-here', reconnect: false });
  });
});

/** The worker's refusal of a handshake with this token, or undefined if it accepted it. */
async function refusalAt(workerIndex: number, token: string): Promise<Error | undefined> {
  try {
    return await handshakeRefusal(testbed.cluster.workers[workerIndex]!.port, { token });
  } catch (error) {
    if ((error as Error).message === 'the handshake was accepted') return undefined;
    throw error;
  }
}

async function signIn(client: { email: string; password: string }): Promise<string> {
  const { status, body } = await api.request<{ token: string }>('POST', '/v1/tokens', { email: client.email, password: client.password });
  expect(status).toBe(200);
  return body.token;
}

describe('POST /v1/tokens/revoke', () => {
  it('by jti: the sockets of that token close on both workers within a second, a new handshake or #authenticate with it is refused, the same client\'s other token still works', async () => {
    const ada = await api.createClient('Ada');
    const other = await signIn(ada);
    const jti = decodeJwt(ada.token).jti;
    expect(typeof jti).toBe('string');
    expect(decodeJwt(other).jti).not.toBe(jti);
    const revoked = [await open(0, ada.token), await open(1, ada.token)];
    const kept = await open(1, other);
    const started = Date.now();
    const closes = revoked.map((socket) => nextClose(socket).then((code) => ({ code, elapsed: Date.now() - started })));
    const { status, body } = await api.request('POST', '/v1/tokens/revoke', { jti });
    expect(status).toBe(202);
    expect(body).toMatchObject({ jti });
    for (const { code, elapsed } of await Promise.all(closes)) {
      expect(code).toBe(CLOSE_CODES.disconnectedNoReconnect);
      expect(elapsed).toBeLessThan(1000);
    }
    expect(kept.state).toBe(kept.OPEN);
    for (const worker of [0, 1]) {
      const refusal = await refusalAt(worker, ada.token);
      expect(refusal?.name, `worker ${worker}`).toBe('AuthTokenInvalidError');
      expect(refusal?.message).toMatch(/revoked/);
      expect(await refusalAt(worker, other), `worker ${worker}`).toBeUndefined();
    }
    const refresh = await kept.authenticate(ada.token).then(() => undefined, (error: Error) => error);
    expect(refresh?.name).toBe('AuthTokenInvalidError');

    // A worker started later loads the revocation from Redis.
    const third = await testbed.cluster.addWorker();
    try {
      expect((await handshakeRefusal(third.port, { token: ada.token })).name).toBe('AuthTokenInvalidError');
    } finally {
      await third.stop('SIGKILL', 5000);
      testbed.cluster.workers.pop();
    }
  });

  it('by client: every token issued at or before the cut-off is refused; a cut-off before a token was issued leaves it alone', async () => {
    const bob = await api.createClient('Bob');
    const second = await signIn(bob);
    const sockets = [await open(0, bob.token), await open(1, second)];
    const closes = sockets.map(nextClose);
    expect((await api.request('POST', '/v1/tokens/revoke', { clientId: bob.clientId })).status).toBe(202);
    expect(await Promise.all(closes)).toEqual([CLOSE_CODES.disconnectedNoReconnect, CLOSE_CODES.disconnectedNoReconnect]);
    for (const worker of [0, 1]) {
      for (const token of [bob.token, second]) expect((await refusalAt(worker, token))?.name).toBe('AuthTokenInvalidError');
    }

    const carol = await api.createClient('Carol');
    const iat = decodeJwt(carol.token).iat!;
    const carolSocket = await open(0, carol.token);
    const dave = await api.createClient('Dave');
    const daveSocket = await open(1, dave.token);
    const daveClosed = nextClose(daveSocket);
    expect((await api.request('POST', '/v1/tokens/revoke', { clientId: carol.clientId, before: iat - 1 })).status).toBe(202);
    // Orders on the control channel arrive in order: once Dave's (sent after Carol's) closed his
    // socket on worker 1, Carol's was applied there too, and her token is newer than its cut-off.
    expect((await api.request('POST', '/v1/tokens/revoke', { clientId: dave.clientId })).status).toBe(202);
    expect(await daveClosed).toBe(CLOSE_CODES.disconnectedNoReconnect);
    expect(await refusalAt(1, carol.token)).toBeUndefined();
    expect(carolSocket.state).toBe(carolSocket.OPEN);
  });

  it('lasts until the revoked token\'s exp when given, else for SOCKETBRIDGE_REVOCATION_TTL_SECONDS, not the sign-up\'s lifetime', async () => {
    // An identity provider's token living 30 days: its revocation by jti holds as long, and workers refuse it.
    const eve = await api.createClient('Eve');
    const jti = decodeJwt(eve.token).jti!;
    const exp = Math.floor(Date.now() / 1000) + 30 * 86400;
    const byJti = await api.request<{ until: number }>('POST', '/v1/tokens/revoke', { jti, exp });
    expect(byJti.status).toBe(202);
    expect(byJti.body.until).toBe(exp * 1000);
    await waitFor(async () => (await refusalAt(0, eve.token))?.name === 'AuthTokenInvalidError', 5000, "Eve's revoked token to be refused");

    const sent = Date.now();
    const byClient = await api.request<{ until: number }>('POST', '/v1/tokens/revoke', { clientId: `idp-user-${sent}` });
    expect(byClient.status).toBe(202);
    expect(byClient.body.until).toBeGreaterThanOrEqual(sent + REVOCATION_TTL_SECONDS * 1000);
    expect(byClient.body.until).toBeLessThanOrEqual(Date.now() + REVOCATION_TTL_SECONDS * 1000);
  });

  it('refuses without the admin key (401) and a bad body (400), with a reason', async () => {
    expect((await testbed.anonymous.request('POST', '/v1/tokens/revoke', { jti: 'x' })).status).toBe(401);
    const cases: Array<[string, unknown]> = [
      ['empty body', {}],
      ['empty jti', { jti: '' }],
      ['both', { jti: 'a', clientId: 'b' }],
      ['negative cut-off', { clientId: 'b', before: -1 }],
      ['cut-off not a number', { clientId: 'b', before: 'soon' }],
      ['extra field', { jti: 'a', everyone: true }],
      ['exp not a number', { jti: 'a', exp: 'later' }],
      ['exp with a client', { clientId: 'b', exp: 1 }],
    ];
    for (const [what, body] of cases) {
      const answer = await api.request<{ error: string; message: string }>('POST', '/v1/tokens/revoke', body);
      expect(answer.status, what).toBe(400);
      expect(answer.body.error, what).toBe('BadRequest');
      expect(answer.body.message, what).toBeTruthy();
    }
  });
});
