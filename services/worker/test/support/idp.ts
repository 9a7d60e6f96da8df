import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';

export type Alg = 'RS256' | 'ES256' | 'EdDSA';

interface Key {
  kid: string;
  alg: Alg;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  jwk: JWK;
}

/**
 * A stand-in identity provider: a real HTTP server on a free loopback port serving, at a
 * Keycloak-shaped path, the public halves of keys generated here, and signing tokens with them.
 * It counts the JWKS requests it gets, and can answer 503 (`down`) to play an outage.
 */
export class LocalIdp {
  private readonly keys = new Map<string, Key>();
  /** The kids the endpoint publishes now. */
  private served: string[] = [];
  requests = 0;
  /** When the endpoint last answered with its keys. */
  lastServedAt = 0;
  down = false;
  issuer = '';
  jwksUri = '';

  private constructor(
    readonly realm: string,
    private readonly server: Server,
  ) {}

  static async start(realm: string): Promise<LocalIdp> {
    const server = createServer();
    const idp = new LocalIdp(realm, server);
    server.on('request', (req, res) => {
      if (req.url !== `/realms/${realm}/protocol/openid-connect/certs`) {
        res.writeHead(404).end();
        return;
      }
      idp.requests++;
      if (idp.down) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('down for maintenance');
        return;
      }
      const body = JSON.stringify({ keys: idp.served.map((kid) => idp.keys.get(kid)!.jwk) });
      idp.lastServedAt = Date.now();
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    idp.issuer = `http://127.0.0.1:${port}/realms/${realm}`;
    idp.jwksUri = `${idp.issuer}/protocol/openid-connect/certs`;
    return idp;
  }

  /** Generates a key pair (named `kid`, or a fresh name); the endpoint publishes it when `publish` (default). */
  async addKey(alg: Alg, publish = true, kid = `${this.realm}-${alg}-${randomBytes(4).toString('hex')}`): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    this.keys.set(kid, { kid, alg, privateKey, jwk });
    if (publish) this.served.push(kid);
    return kid;
  }

  /** What the endpoint publishes from now on (a rotation). */
  publish(kids: string[]): void {
    this.served = [...kids];
  }

  /** A token signed with `kid` (which may be another IdP's key: `signer`). */
  async sign(
    kid: string,
    claims: Record<string, unknown>,
    options: { issuer?: string; audience?: string; expiresInSeconds?: number; signer?: LocalIdp } = {},
  ): Promise<string> {
    const key = (options.signer ?? this).keys.get(kid);
    if (!key) throw new Error(`no key ${kid}`);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid, typ: 'JWT' })
      .setIssuer(options.issuer ?? this.issuer)
      .setAudience(options.audience ?? 'socketbridge')
      .setIssuedAt(now)
      .setExpirationTime(now + (options.expiresInSeconds ?? 300))
      .sign(key.privateKey);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
