import { describe, expect, it } from 'vitest';
import { ConfigError, MAX_TOKEN_CHANNELS, issuersEnv, loadConfig, mapClaims } from '../../src/index.js';

const shape = { SOCKETBRIDGE_JWT_ISSUERS: issuersEnv() };
const load = (value: string | undefined) => loadConfig(shape, { SOCKETBRIDGE_JWT_ISSUERS: value }).SOCKETBRIDGE_JWT_ISSUERS;
const failure = (value: string): string => {
  try {
    load(value);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
};

const keycloak = { issuer: 'https://sso.example.com/realms/acme', jwksUri: 'https://sso.example.com/realms/acme/protocol/openid-connect/certs', audience: 'socketbridge' };

describe('SOCKETBRIDGE_JWT_ISSUERS', () => {
  it('is empty when unset, and fills in the defaults of each issuer', () => {
    expect(load(undefined)).toEqual([]);
    expect(load('')).toEqual([]);
    expect(load(JSON.stringify([keycloak]))).toEqual([
      { ...keycloak, algorithms: ['RS256', 'ES256', 'EdDSA'], clientIdClaim: 'sub', channelsClaim: 'channels', allowHttp: false },
    ]);
  });

  it('refuses what is not a valid issuer list, naming the problem', () => {
    expect(failure('{not json')).toMatch(/SOCKETBRIDGE_JWT_ISSUERS: must be a JSON array of issuers/);
    expect(failure(JSON.stringify(keycloak))).toContain('SOCKETBRIDGE_JWT_ISSUERS');
    expect(failure(JSON.stringify([{ ...keycloak, audience: undefined }]))).toContain('SOCKETBRIDGE_JWT_ISSUERS.0.audience');
    expect(failure(JSON.stringify([{ ...keycloak, algorithms: ['HS256'] }]))).toContain('SOCKETBRIDGE_JWT_ISSUERS.0.algorithms');
    expect(failure(JSON.stringify([{ ...keycloak, extra: 1 }]))).toContain('extra');
    expect(failure(JSON.stringify([keycloak, keycloak]))).toContain('listed twice');
    // http only to loopback, or when asked for.
    const http = { ...keycloak, jwksUri: 'http://keycloak.sso.svc:8080/realms/acme/protocol/openid-connect/certs' };
    expect(failure(JSON.stringify([http]))).toContain('must be https://');
    expect(load(JSON.stringify([{ ...http, allowHttp: true }]))[0]!.allowHttp).toBe(true);
    expect(load(JSON.stringify([{ ...keycloak, jwksUri: 'http://127.0.0.1:8080/certs' }]))).toHaveLength(1);
  });
});

describe('mapClaims', () => {
  const defaults = { clientIdClaim: 'sub', channelsClaim: 'channels' };

  it('names the client by its claim and grants the channels listed in an array or a space-separated string', () => {
    expect(mapClaims(defaults, { sub: 'ada', channels: ['room.a', 'room.a', 'room.b'], exp: 1 })).toMatchObject({ sub: 'ada', channels: ['room.a', 'room.b'], exp: 1 });
    expect(mapClaims(defaults, { sub: 'ada' })).toMatchObject({ sub: 'ada', channels: [] });
    expect(mapClaims({ clientIdClaim: 'preferred_username', channelsClaim: 'scope', channelPrefix: 'ch:' }, { sub: 'x', preferred_username: 'ada', scope: 'openid ch:room.a profile ch: ch:room.b' })).toMatchObject({
      sub: 'ada',
      channels: ['room.a', 'room.b'],
    });
    // A claim name with dots (Auth0's namespaced claims) is taken literally.
    expect(mapClaims({ ...defaults, channelsClaim: 'https://example.com/channels' }, { sub: 'ada', 'https://example.com/channels': ['room.a'] }).channels).toEqual(['room.a']);
  });

  it('refuses a token whose claims do not fit, with the claim named', () => {
    expect(() => mapClaims(defaults, { channels: [] })).toThrow(/"sub" claim must name the client/);
    expect(() => mapClaims(defaults, { sub: 42 } as never)).toThrow(/"sub" claim/);
    expect(() => mapClaims(defaults, { sub: 'a'.repeat(201) })).toThrow(/"sub" claim/);
    expect(() => mapClaims(defaults, { sub: 'ada', channels: [1] })).toThrow(/"channels" claim must be/);
    expect(() => mapClaims(defaults, { sub: 'ada', channels: { a: 1 } })).toThrow(/"channels" claim must be/);
    const many = Array.from({ length: MAX_TOKEN_CHANNELS + 1 }, (_, i) => `room.${i}`);
    expect(() => mapClaims(defaults, { sub: 'ada', channels: many })).toThrow(/at most 1000/);
  });

  it('never finds a claim on the prototype', () => {
    expect(() => mapClaims({ clientIdClaim: 'constructor', channelsClaim: 'channels' }, { sub: 'ada' })).toThrow(/"constructor" claim/);
    expect(mapClaims({ clientIdClaim: 'sub', channelsClaim: '__proto__' }, { sub: 'ada' }).channels).toEqual([]);
  });
});
