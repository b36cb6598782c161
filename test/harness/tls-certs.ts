// A private CA and a server certificate for 127.0.0.1 it signed, made with openssl, for TLS
// servers in tests (redis-server's tls-port, Sentinels, Cluster nodes).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestCertificates {
  /** The CA's certificate (PEM file): what a client trusts. */
  readonly caFile: string;
  /** The server's certificate and key (PEM files). */
  readonly cert: string;
  readonly key: string;
}

export function makeCertificates(dir: string): TestCertificates {
  const caFile = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca.key');
  const cert = path.join(dir, 'server.pem');
  const key = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const ext = path.join(dir, 'san.ext');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=mailgw test CA'], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\n');
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext], { stdio: 'ignore' });
  return { caFile, cert, key };
}
