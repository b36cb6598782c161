/**
 * A certificate authority made for one test run with openssl (in a temp dir), and server
 * certificates it signs for given names; plus self-signed ones, which no CA vouches for.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export interface KeyPair {
  readonly key: string;
  readonly cert: string;
}

export interface TestCa {
  /** The CA certificate (PEM): what the gateway is told to trust. */
  readonly cert: string;
  /** A server certificate for `names` (DNS subject alternative names), signed by the CA. */
  issue(names: readonly string[]): Promise<KeyPair>;
  /** A self-signed certificate for `names`: valid names, untrusted chain. */
  selfSigned(names: readonly string[]): Promise<KeyPair>;
  close(): Promise<void>;
}

export async function makeTestCa(): Promise<TestCa> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-ca-'));
  const caKey = path.join(dir, 'ca.key');
  const caCert = path.join(dir, 'ca.pem');
  await run('openssl', ['req', '-x509', ...EC, '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=mailgw test CA']);
  let n = 0;
  const san = async (names: readonly string[]) => {
    const ext = path.join(dir, `ext${++n}.cnf`);
    await writeFile(ext, `subjectAltName=${names.map((x) => `DNS:${x}`).join(',')}\n`);
    return ext;
  };
  return {
    cert: await readFile(caCert, 'utf8'),
    async issue(names) {
      const i = ++n;
      const [key, csr, cert] = ['key', 'csr', 'pem'].map((e) => path.join(dir, `leaf${i}.${e}`)) as [string, string, string];
      await run('openssl', ['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${names[0]}`]);
      await run('openssl', ['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', await san(names)]);
      return { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') };
    },
    async selfSigned(names) {
      const i = ++n;
      const [key, cert] = ['key', 'pem'].map((e) => path.join(dir, `self${i}.${e}`)) as [string, string];
      await run('openssl', ['req', '-x509', ...EC, '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((x) => `DNS:${x}`).join(',')}`]);
      return { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') };
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
