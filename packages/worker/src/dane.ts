// DANE for SMTP (RFC 7672): TLSA records of `_<port>._tcp.<mx host>` and whether a TLS peer's
// certificate chain matches them. The lookup goes through the worker's resolver, which must
// say whether the answer was DNSSEC-authenticated (AD bit from a validating resolver): only
// secure TLSA records count. The matching is pure (certificates in, reason out).
import { createHash, X509Certificate } from 'node:crypto';
import dgram from 'node:dgram';
import { getServers } from 'node:dns';
import { isIP } from 'node:net';
import type { DetailedPeerCertificate } from 'node:tls';
import * as packet from 'dns-packet';

export interface TlsaRecord {
  /** 2 DANE-TA, 3 DANE-EE (0 and 1 are unusable for SMTP, RFC 7672 §3.1.3). */
  readonly usage: number;
  /** 0 full certificate, 1 SubjectPublicKeyInfo. */
  readonly selector: number;
  /** 0 exact, 1 SHA-256, 2 SHA-512. */
  readonly matchingType: number;
  readonly data: Buffer;
}

/** A TLSA answer: `secure` when DNSSEC-authenticated (AD); no records: NODATA/NXDOMAIN. */
export interface TlsaAnswer {
  readonly secure: boolean;
  readonly records: readonly TlsaRecord[];
}

/** Records a sender can use: DANE-TA(2)/DANE-EE(3), selector 0/1, matching type 0/1/2. */
export function usableTlsa(records: readonly TlsaRecord[]): TlsaRecord[] {
  return records.filter((r) => (r.usage === 2 || r.usage === 3) && (r.selector === 0 || r.selector === 1) && r.matchingType >= 0 && r.matchingType <= 2);
}

function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
}

function matches(r: TlsaRecord, cert: X509Certificate): boolean {
  const s = selected(cert, r.selector);
  const v = r.matchingType === 0 ? s : createHash(r.matchingType === 1 ? 'sha256' : 'sha512').update(s).digest();
  return v.equals(r.data);
}

/** The peer's chain, leaf first, as sent (from getPeerCertificate(true)). */
export function peerChain(cert: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = cert; c && c.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
  }
  return out;
}

/** The names a DANE-TA certificate may carry (RFC 7672 §3.2.2): the TLSA base domain and the MX host name. */
export function daneNames(base: string, hostName: string): string[] {
  return [...new Set([base, hostName.toLowerCase()])];
}

/**
 * Whether a chain (leaf first) satisfies the TLSA records (RFC 7672 §3.1): DANE-EE(3) — the
 * leaf matches, names and dates not checked; DANE-TA(2) — some certificate of the chain
 * matches, every link up to it is signed by the next, and the leaf carries one of `hostNames`
 * (the TLSA base domain and the MX host name, §3.2.2). Null when satisfied, else why not.
 */
export function daneMismatch(records: readonly TlsaRecord[], chain: readonly X509Certificate[], names: readonly string[]): string | null {
  const leaf = chain[0];
  if (!leaf) return 'no certificate presented';
  if (records.some((r) => r.usage === 3 && matches(r, leaf))) return null;
  const ta = records.filter((r) => r.usage === 2);
  for (let i = 0; i < chain.length && ta.length > 0; i++) {
    if (!ta.some((r) => matches(r, chain[i]!))) continue;
    let linked = true;
    for (let j = 0; j < i; j++) linked &&= chain[j]!.checkIssued(chain[j + 1]!) && chain[j]!.verify(chain[j + 1]!.publicKey);
    if (!linked) return `the chain to the DANE-TA certificate is broken`;
    if (!names.some((n) => leaf.checkHost(n) !== undefined)) return `DANE-TA matched, but the certificate does not carry ${names.join(' nor ')}`;
    const now = Date.now();
    if (Date.parse(leaf.validTo) < now || Date.parse(leaf.validFrom) > now) return 'DANE-TA matched, but the certificate is expired or not yet valid';
    return null;
  }
  return `no TLSA record (${records.map((r) => `${r.usage} ${r.selector} ${r.matchingType}`).join(', ')}) matches the certificate chain`;
}

/**
 * One query over UDP with EDNS DO set, to the first system name server (which must validate
 * DNSSEC: a local validating resolver such as unbound, as RFC 7672 assumes): the answers and
 * its AD bit. Rejects with node:dns-like codes (ENOTFOUND for NXDOMAIN, ESERVFAIL, ETIMEOUT).
 */
function queryDnssec(name: string, type: 'TLSA' | 'MX' | 'A' | 'AAAA', o: { server?: string; timeoutMs?: number } = {}): Promise<{ secure: boolean; answers: packet.Answer[] }> {
  const server = o.server ?? getServers()[0] ?? '127.0.0.1';
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(server);
  const host = m && isIP(m[1]!) ? m[1]! : server;
  const port = m?.[2] ? Number(m[2]) : 53;
  const id = Math.floor(Math.random() * 65535);
  const query = packet.encode({
    type: 'query',
    id,
    flags: packet.RECURSION_DESIRED | packet.AUTHENTIC_DATA,
    questions: [{ type, name, class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: packet.DNSSEC_OK } as unknown as packet.Answer],
  });
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    const timer = setTimeout(() => finish(Object.assign(new Error(`${type} ${name}: timeout`), { code: 'ETIMEOUT' })), o.timeoutMs ?? 5000);
    const finish = (err: Error | null, answer?: { secure: boolean; answers: packet.Answer[] }) => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    socket.on('error', (err) => finish(err));
    socket.on('message', (msg) => {
      let res: packet.Packet;
      try {
        res = packet.decode(msg);
      } catch {
        return;
      }
      if (res.id !== id) return;
      const rcode = (res.flags ?? 0) & 0xf;
      if (rcode === 3) return finish(Object.assign(new Error(`${type} ${name}: NXDOMAIN`), { code: 'ENOTFOUND' }));
      if (rcode !== 0) return finish(Object.assign(new Error(`${type} ${name}: rcode ${rcode}`), { code: 'ESERVFAIL' }));
      finish(null, { secure: ((res.flags ?? 0) & packet.AUTHENTIC_DATA) !== 0, answers: res.answers ?? [] });
    });
    socket.send(query, port, host);
  });
}

/** TLSA records at `name` and whether the answer was DNSSEC-authenticated (queryDnssec). */
export async function queryTlsa(name: string, o: { server?: string; timeoutMs?: number } = {}): Promise<TlsaAnswer> {
  const { secure, answers } = await queryDnssec(name, 'TLSA', o);
  const records = answers
    .filter((a): a is packet.TlsaAnswer => a.type === 'TLSA')
    .map((a) => ({ usage: a.data.usage, selector: a.data.selector, matchingType: a.data.matchingType, data: Buffer.from(a.data.certificate) }));
  return { secure, records };
}

/** What a DNSSEC-aware lookup of an RRset says: authenticated or not, and the name its records are at. */
export interface DnssecStatus {
  /** The answer carried the AD bit: the records, and every CNAME leading to them, validated. */
  readonly secure: boolean;
  /** Where the records are: `name` itself, or the end of the CNAME chain the answer holds. */
  readonly owner: string;
}

/**
 * The end of the CNAME chain from `name` in an answer section (a recursive resolver returns the
 * chain with the records it leads to), `name` itself without one. A loop or a chain longer than
 * 16 stops where it is.
 */
function cnameTarget(name: string, answers: readonly packet.Answer[]): string {
  const strip = (n: string) => n.replace(/\.$/, '').toLowerCase();
  const aliases = new Map<string, string>();
  for (const a of answers) if (a.type === 'CNAME' && typeof a.data === 'string') aliases.set(strip(a.name), strip(a.data));
  let owner = strip(name);
  for (let i = 0; i < 16 && aliases.has(owner); i++) owner = aliases.get(owner)!;
  return owner;
}

/**
 * Whether the `type` records of `name` (MX, A, AAAA) are DNSSEC-authenticated, and where they
 * are (the CNAME-expanded name): RFC 7672 §2.2 applies DANE only where the MX RRset and the MX
 * host's address records are, and §2.2.2 looks for TLSA records at the expanded name first.
 * NXDOMAIN rejects (ENOTFOUND); an authenticated "no such records" is secure.
 */
export async function queryDnssecStatus(name: string, type: 'MX' | 'A' | 'AAAA', o: { server?: string; timeoutMs?: number } = {}): Promise<DnssecStatus> {
  const { secure, answers } = await queryDnssec(name, type, o);
  return { secure, owner: cnameTarget(name, answers) };
}

