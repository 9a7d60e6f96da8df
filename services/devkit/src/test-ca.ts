import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throw-away certificate authority and one server certificate it signed, for 127.0.0.1 and
 * localhost, made by `openssl` in a temp folder (docs/testing.md): TLS Redis topologies use the
 * server pair, services trust `caFile` through NODE_EXTRA_CA_CERTS as a deployment trusts a private
 * CA. A second TestCa is a CA that did not sign the first one's server certificate.
 */
export class TestCa {
  private constructor(
    readonly dir: string,
    /** The CA's certificate (PEM): what a client trusts. */
    readonly caFile: string,
    /** The server's certificate (PEM), signed by the CA, naming IP 127.0.0.1 and DNS localhost. */
    readonly certFile: string,
    readonly keyFile: string,
  ) {}

  /** `altNames`: what the server certificate names (default `IP:127.0.0.1,DNS:localhost`, the addresses the topologies announce). */
  static create(options: { name?: string; altNames?: string } = {}): TestCa {
    const { name = 'SocketBridge test CA', altNames = 'IP:127.0.0.1,DNS:localhost' } = options;
    const dir = mkdtempSync(join(tmpdir(), 'socketbridge-ca-'));
    const file = (base: string) => join(dir, base);
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      // P-256 keys: made in milliseconds, unlike RSA, and every TLS stack here speaks them.
      const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
      openssl('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '2', '-subj', `/CN=${name}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
      openssl('req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost');
      // The addresses a client checks the certificate against: the nodes and sentinels announce 127.0.0.1.
      // clientAuth as well: a replica and a cluster node present the same certificate when they connect to a peer.
      writeFileSync(file('server.ext'), `subjectAltName=${altNames}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial',
        '-out', file('server.crt'), '-days', '2', '-extfile', file('server.ext'));
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`openssl could not make a test CA: ${(error as { stderr?: Buffer }).stderr?.toString() ?? (error as Error).message}`);
    }
    return new TestCa(dir, file('ca.crt'), file('server.crt'), file('server.key'));
  }

  /** The CA's certificate, for a harness's own connections (`tls: { ca }`). */
  get ca(): Buffer {
    return readFileSync(this.caFile);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
