// A small authoritative DNS server on loopback (UDP) serving fixture zones, for the tests of
// block lists, sender authentication and DANE: A, AAAA, TXT, MX, PTR, TLSA and CNAME records (with the
// AD bit set for names marked `secure`, as a validating resolver would), NXDOMAIN for names
// it does not have, NODATA for types a name lacks, SERVFAIL on request, and names that never
// get an answer (timeouts). It counts the queries it gets, so tests can see the cache work.
// Nothing here reaches real DNS: the gateway's resolver is pointed at this server.
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import * as packet from 'dns-packet';

export interface FixtureRecords {
  A?: string[];
  AAAA?: string[];
  /** Each record as one string (split into 255-byte character-strings here) or its strings. */
  TXT?: Array<string | string[]>;
  MX?: Array<{ exchange: string; priority: number }>;
  PTR?: string[];
  TLSA?: Array<{ usage: number; selector: number; matchingType: number; data: Buffer }>;
  /**
   * An alias: queries of other types are answered as a recursive resolver does, with this
   * CNAME and what its target has (the AD bit only if every name on the way is `secure`).
   */
  CNAME?: string;
  /** Answers for this name carry the AD bit (DNSSEC-authenticated), as from a validating resolver. */
  secure?: boolean;
  /** TTL of every record of this name, seconds (default 300). */
  ttl?: number;
}

export type FixtureZone = Record<string, FixtureRecords>;

export interface TestDns {
  readonly port: number;
  /** "127.0.0.1:port", for dns.servers. */
  readonly server: string;
  set(name: string, records: FixtureRecords): void;
  remove(name: string): void;
  /** Queries for this name get no answer at all. */
  silence(name: string): void;
  /** Queries for this name are answered SERVFAIL. */
  servfail(name: string): void;
  /** Queries received for a name (and type), since the start. */
  count(name: string, type?: string): number;
  close(): Promise<void>;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 } as const;

function characterStrings(s: string): Buffer[] {
  const b = Buffer.from(s, 'utf8');
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += 255) out.push(b.subarray(i, i + 255));
  return out.length ? out : [Buffer.alloc(0)];
}

export async function startDnsServer(zone: FixtureZone = {}): Promise<TestDns> {
  const records = new Map<string, FixtureRecords>();
  const norm = (n: string) => n.toLowerCase().replace(/\.$/, '');
  for (const [n, r] of Object.entries(zone)) records.set(norm(n), r);
  const silent = new Set<string>();
  const failing = new Set<string>();
  const counts = new Map<string, number>();
  const socket = dgram.createSocket('udp4');

  socket.on('message', (msg, rinfo) => {
    let q: packet.Packet;
    try {
      q = packet.decode(msg);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    if (!question) return;
    const name = norm(question.name);
    for (const k of [name, `${name} ${question.type}`]) counts.set(k, (counts.get(k) ?? 0) + 1);
    if (silent.has(name)) return;
    // Follow CNAMEs within the zone, as a recursive resolver would.
    const chain: Array<{ name: string; entry: FixtureRecords | undefined }> = [{ name, entry: records.get(name) }];
    while (question.type !== 'CNAME' && chain.at(-1)!.entry?.CNAME && chain.length < 10) {
      const next = norm(chain.at(-1)!.entry!.CNAME!);
      chain.push({ name: next, entry: records.get(next) });
    }
    const entry = chain.at(-1)!.entry;
    let rcode: number = RCODE.NOERROR;
    const answers: packet.Answer[] = [];
    for (const link of chain.slice(0, -1)) answers.push({ name: link.name, ttl: link.entry!.ttl ?? 300, class: 'IN', type: 'CNAME', data: link.entry!.CNAME! });
    if (failing.has(name)) rcode = RCODE.SERVFAIL;
    else if (!entry) rcode = RCODE.NXDOMAIN;
    else {
      const ttl = entry.ttl ?? 300;
      const base = { name: chain.length === 1 ? question.name : chain.at(-1)!.name, ttl, class: 'IN' as const };
      switch (question.type) {
        case 'A':
          for (const a of entry.A ?? []) answers.push({ ...base, type: 'A', data: a });
          break;
        case 'AAAA':
          for (const a of entry.AAAA ?? []) answers.push({ ...base, type: 'AAAA', data: a });
          break;
        case 'TXT':
          for (const t of entry.TXT ?? []) answers.push({ ...base, type: 'TXT', data: (Array.isArray(t) ? t : [t]).flatMap(characterStrings) });
          break;
        case 'MX':
          for (const m of entry.MX ?? []) answers.push({ ...base, type: 'MX', data: { preference: m.priority, exchange: m.exchange } });
          break;
        case 'PTR':
          for (const p of entry.PTR ?? []) answers.push({ ...base, type: 'PTR', data: p });
          break;
        case 'TLSA':
          for (const t of entry.TLSA ?? []) answers.push({ ...base, type: 'TLSA', data: { usage: t.usage, selector: t.selector, matchingType: t.matchingType, certificate: t.data } });
          break;
        case 'CNAME':
          if (entry.CNAME) answers.push({ ...base, type: 'CNAME', data: entry.CNAME });
          break;
        default:
          break;
      }
    }
    const secure = chain.every((l) => l.entry?.secure) && rcode === RCODE.NOERROR;
    const flags = packet.AUTHORITATIVE_ANSWER | packet.RECURSION_AVAILABLE | ((q.flags ?? 0) & packet.RECURSION_DESIRED) | (secure ? packet.AUTHENTIC_DATA : 0) | rcode;
    const reply = packet.encode({ id: q.id ?? 0, type: 'response', flags, questions: [question], answers });
    socket.send(reply, rinfo.port, rinfo.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const port = (socket.address() as AddressInfo).port;
  return {
    port,
    server: `127.0.0.1:${port}`,
    set: (n, r) => void records.set(norm(n), r),
    remove: (n) => void records.delete(norm(n)),
    silence: (n) => void silent.add(norm(n)),
    servfail: (n) => void failing.add(norm(n)),
    count: (n, type) => counts.get(type ? `${norm(n)} ${type}` : norm(n)) ?? 0,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/**
 * gateway.yaml line for gateways a test starts as a process without a fixture DNS server:
 * sender authentication (on by default for usage Internet) would otherwise ask the system's
 * resolver, and tests never reach real DNS.
 */
export const NO_REAL_DNS_YAML = 'senderAuthentication: { enabled: false }  # no real DNS in tests';

/** Adds NO_REAL_DNS_YAML to a gateway.yaml text that does not configure sender authentication itself. */
export function withoutRealDns(yaml: string): string {
  return /^senderAuthentication:/m.test(yaml) ? yaml : `${yaml.replace(/\n?$/, '\n')}${NO_REAL_DNS_YAML}\n`;
}
