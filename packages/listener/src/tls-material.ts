// TLS certificates per connector: the connector's tlsCertificate/tlsKey files, or a self-signed
// certificate for its FQDN made with openssl into dataDir/tls/ at first start and reused later.
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import type { ConfigIssue } from '@mailgw/config';
import type { CompiledConnector } from '@mailgw/policy';
import type { Logger } from 'pino';

const run = promisify(execFile);

export interface TlsMaterial {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly context: tls.SecureContext;
  /** Where it came from, for logs. */
  readonly source: string;
}

/** TLS settings shared by every connector: no SSLv3/TLS 1.0/1.1. */
export const TLS_BASE_OPTIONS = { minVersion: 'TLSv1.2' } as const satisfies tls.SecureContextOptions;

export function needsTls(c: CompiledConnector): boolean {
  return c.offersTls || c.config.implicitTLS;
}

/** How long a process waits for another one making the same certificate. */
const LOCK_WAIT_MS = 30_000;
/** A lock this old was left by a process that died while making the certificate. */
const STALE_LOCK_MS = 60_000;

/**
 * Generates (once) a self-signed EC certificate for `fqdn` in `dir`; returns the file paths.
 * Several listener processes start at once under `mailgw start`: one makes the pair under a lock
 * file (O_EXCL), the others wait for it, so nobody reads a key of one run with the certificate
 * of another.
 */
export async function ensureSelfSigned(dir: string, fqdn: string, logger: Logger, connector: string): Promise<{ certFile: string; keyFile: string; created: boolean }> {
  const certFile = path.join(dir, `${fqdn}.crt`);
  const keyFile = path.join(dir, `${fqdn}.key`);
  const lock = path.join(dir, `${fqdn}.lock`);
  const ready = () => existsSync(certFile) && existsSync(keyFile) && !existsSync(lock);
  if (ready()) return { certFile, keyFile, created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const deadline = Date.now() + LOCK_WAIT_MS; ; ) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    try {
      if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { force: true });
    } catch {
      // gone meanwhile: try again
    }
    if (ready()) return { certFile, keyFile, created: false };
    if (Date.now() > deadline) throw new Error(`waited ${LOCK_WAIT_MS / 1000}s for another mailgw process to make the self-signed certificate ${certFile}; if no mailgw is running, remove ${lock}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    // Made by the process that held the lock before us.
    if (existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile, created: false };
    return await makeSelfSigned(certFile, keyFile, fqdn, logger, connector);
  } finally {
    rmSync(lock, { force: true });
  }
}

async function makeSelfSigned(certFile: string, keyFile: string, fqdn: string, logger: Logger, connector: string): Promise<{ certFile: string; keyFile: string; created: boolean }> {
  const tmpCert = `${certFile}.${process.pid}.tmp`;
  const tmpKey = `${keyFile}.${process.pid}.tmp`;
  try {
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', tmpKey, '-out', tmpCert, '-days', '825',
      '-subj', `/CN=${fqdn}`, '-addext', `subjectAltName=DNS:${fqdn}`,
    ]);
  } catch (e) {
    rmSync(tmpCert, { force: true });
    rmSync(tmpKey, { force: true });
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    const why = err.code === 'ENOENT' ? 'openssl is not installed (apt-get install -y openssl)' : (err.stderr ?? err.message).trim();
    throw new Error(`cannot make a self-signed certificate for ${fqdn} (connector "${connector}"): ${why}; or set tlsCertificate and tlsKey`);
  }
  renameSync(tmpKey, keyFile);
  renameSync(tmpCert, certFile);
  logger.warn(
    { connector, fqdn, certFile, keyFile },
    `connector "${connector}" offers TLS without tlsCertificate/tlsKey: generated a SELF-SIGNED certificate for ${fqdn} at ${certFile}; ` +
      'clients will not trust it. Set tlsCertificate and tlsKey for production.',
  );
  return { certFile, keyFile, created: true };
}

/** A connector's own files (tlsCertificate, tlsKey), resolved against the config's directory; null when it has none. */
function ownFiles(c: CompiledConnector, configDir: string): { certFile: string; keyFile: string } | null {
  const { tlsCertificate, tlsKey } = c.config;
  return tlsCertificate && tlsKey ? { certFile: path.resolve(configDir, tlsCertificate), keyFile: path.resolve(configDir, tlsKey) } : null;
}

function readFailure(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return `permission denied (mailgw runs as uid ${process.getuid?.() ?? '?'})`;
  if (code === 'EISDIR') return 'is a directory';
  return (e as Error).message;
}

type PairProblem = { readonly key: 'tlsCertificate' | 'tlsKey'; readonly message: string };
type Pair = { readonly cert: Buffer; readonly key: Buffer; readonly x509: X509Certificate; readonly context: tls.SecureContext };

/**
 * Reads a certificate and its key as the listener serves them: every problem found, each
 * under the connector key it comes from (both files unreadable is two problems).
 */
function readPair(certFile: string, keyFile: string): { ok: true; pair: Pair } | { ok: false; problems: PairProblem[] } {
  const problems: PairProblem[] = [];
  const read = (file: string, key: PairProblem['key']): Buffer | null => {
    try {
      return readFileSync(file);
    } catch (e) {
      problems.push({ key, message: `cannot read ${file}: ${readFailure(e)}` });
      return null;
    }
  };
  const cert = read(certFile, 'tlsCertificate');
  const key = read(keyFile, 'tlsKey');
  if (!cert || !key) return { ok: false, problems };
  const fail = (k: PairProblem['key'], message: string) => ({ ok: false as const, problems: [{ key: k, message }] });
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return fail('tlsCertificate', `${certFile} is not a PEM certificate`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    // PKCS#8 says so in its label, the older PEM keys in a header.
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(key.toString('latin1'));
    return fail('tlsKey', encrypted ? `${keyFile} is encrypted: mailgw needs the key without a passphrase (openssl pkey -in it -out a new file)` : `${keyFile} is not a PEM private key`);
  }
  if (!x509.checkPrivateKey(privateKey)) return fail('tlsKey', `${keyFile} is not the key of ${certFile} (${x509.subject.replace(/\n/g, ', ')})`);
  try {
    return { ok: true, pair: { cert, key, x509, context: tls.createSecureContext({ ...TLS_BASE_OPTIONS, key, cert }) } };
  } catch (e) {
    return fail('tlsCertificate', `${certFile} / ${keyFile} are not a usable certificate and key: ${(e as Error).message}`);
  }
}

/** Loads or makes the certificate of every connector that offers TLS. */
export async function loadTlsMaterial(
  connectors: readonly CompiledConnector[],
  opts: { configDir: string; dataDir: string; logger: Logger; domainSecureCAFile?: string | undefined },
): Promise<Map<string, TlsMaterial>> {
  const out = new Map<string, TlsMaterial>();
  // Domain security: the CAs a partner's client certificate may chain to (the system's, and the admin's file).
  let clientCAs: string[] | null = null;
  const partnerCAs = (): string[] => {
    if (clientCAs) return clientCAs;
    const r = readPartnerCAs(opts.domainSecureCAFile, opts.configDir);
    if (!r.ok) throw new Error(`gateway domainSecureCAFile: ${r.message}`);
    clientCAs = [...tls.rootCertificates, ...r.pems];
    return clientCAs;
  };
  for (const c of connectors) {
    if (!c.config.enabled || !needsTls(c)) continue;
    let files = ownFiles(c, opts.configDir);
    let source = files?.certFile ?? '';
    if (!files) {
      const made = await ensureSelfSigned(path.join(opts.dataDir, 'tls'), c.config.fqdn, opts.logger, c.name);
      files = made;
      source = `self-signed ${made.certFile}`;
      if (!made.created) opts.logger.info({ connector: c.name, certFile: made.certFile }, `connector "${c.name}" uses the self-signed certificate ${made.certFile}`);
    }
    // Own files were checked at config load (tlsFileIssues); this is for a file changed since, and the self-signed pair.
    const r = readPair(files.certFile, files.keyFile);
    if (!r.ok) throw new Error(r.problems.map((x) => `connector "${c.name}" (${c.config.file}): ${x.key}: ${x.message}`).join('; '));
    const context = c.config.domainSecureEnabled ? tls.createSecureContext({ ...TLS_BASE_OPTIONS, key: r.pair.key, cert: r.pair.cert, ca: partnerCAs() }) : r.pair.context;
    out.set(c.name, { key: r.pair.key, cert: r.pair.cert, context, source });
  }
  return out;
}

/** The PEM of domainSecureCAFile (none when unset), or what is wrong with it. */
export function readPartnerCAs(file: string | undefined, configDir: string): { ok: true; pems: string[] } | { ok: false; message: string } {
  if (!file) return { ok: true, pems: [] };
  const full = path.resolve(configDir, file);
  let pem: string;
  try {
    pem = readFileSync(full, 'utf8');
  } catch (e) {
    return { ok: false, message: `${full} cannot be read: ${(e as Error).message}` };
  }
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) return { ok: false, message: `${full} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")` };
  try {
    tls.createSecureContext({ ca: pem });
  } catch (e) {
    return { ok: false, message: `${full} is not a usable CA bundle: ${(e as Error).message}` };
  }
  return { ok: true, pems: [pem] };
}

/** A certificate that runs out within this many days gets a warning. */
export const CERT_EXPIRY_WARNING_DAYS = 30;

const DAY_MS = 86_400_000;

/**
 * The connectors' own certificate files (tlsCertificate, tlsKey), checked as the listener will
 * load them (readPair), for `mailgw check`, the start and every reload: errors for files that
 * cannot be read, are not PEM, or do not belong together (each naming the connector's file and
 * key); warnings for a certificate that has expired or soon will, or that does not name the
 * connector's FQDN (its EHLO name, which clients that check certificates compare it with).
 * Connectors without their own files get a self-signed one at start: nothing to check here.
 */
export function tlsFileIssues(connectors: readonly CompiledConnector[], configDir: string, now = Date.now()): { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  for (const c of connectors) {
    const files = c.config.enabled && needsTls(c) ? ownFiles(c, configDir) : null;
    if (!files) continue;
    const { file, fqdn } = c.config;
    const r = readPair(files.certFile, files.keyFile);
    if (!r.ok) {
      for (const x of r.problems) errors.push({ file, path: x.key, message: x.message });
      continue;
    }
    const { x509 } = r.pair;
    const validTo = Date.parse(x509.validTo);
    const until = new Date(validTo).toISOString().slice(0, 10);
    if (validTo <= now) warnings.push({ file, path: 'tlsCertificate', message: `${files.certFile} expired on ${until}: clients that check certificates will refuse it` });
    else if (validTo - now < CERT_EXPIRY_WARNING_DAYS * DAY_MS) warnings.push({ file, path: 'tlsCertificate', message: `${files.certFile} expires on ${until}, in ${Math.ceil((validTo - now) / DAY_MS)} days` });
    if (x509.checkHost(fqdn) === undefined) {
      const names = x509.subjectAltName ?? x509.subject.replace(/\n/g, ', ');
      warnings.push({ file, path: 'tlsCertificate', message: `${files.certFile} does not name ${fqdn}, the connector's FQDN (it names ${names}): clients that check the name will refuse it` });
    }
  }
  return { errors, warnings };
}
