// MTA-STS (RFC 8461), the pure part: the `_mta-sts` TXT record, the policy file served at
// https://mta-sts.<domain>/.well-known/mta-sts.txt, and which MX hosts a policy allows.
// The worker does the lookups, the HTTPS fetch and the Redis cache around these.

import { localReply, type Reply } from '@mailgw/mail';

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  readonly mode: StsMode;
  /** MX patterns, lower case: "mx.example.com" or "*.example.com" (one label). */
  readonly mx: readonly string[];
  /** Seconds the policy may be cached (RFC 8461: at most 31557600). */
  readonly maxAge: number;
}

export type StsParse<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/** The largest max_age RFC 8461 §3.2 allows (one year). */
export const STS_MAX_AGE_LIMIT = 31_557_600;
/** Policy bodies larger than this are refused (RFC 8461 §3.3 suggests 64 KiB). */
export const STS_MAX_POLICY_BYTES = 64 * 1024;

/**
 * The policy id from the TXT strings at `_mta-sts.<domain>` (each record's strings already
 * joined). RFC 8461 §3.1: records not starting with "v=STSv1" are ignored; no record, or more
 * than one STSv1 record, means no policy (ok with null); an STSv1 record without a valid id is
 * an error.
 */
export function parseStsRecord(records: readonly string[]): StsParse<string | null> {
  const sts = records.filter((r) => /^v=STSv1\s*(;|$)/.test(r));
  if (sts.length === 0) return { ok: true, value: null };
  if (sts.length > 1) return { ok: false, error: `${sts.length} v=STSv1 TXT records (exactly one is allowed)` };
  const fields = new Map<string, string>();
  for (const part of sts[0]!.split(';')) {
    const t = part.trim();
    if (t === '') continue;
    const eq = t.indexOf('=');
    if (eq <= 0) return { ok: false, error: `malformed field "${t}" in the TXT record` };
    const key = t.slice(0, eq).trim();
    if (!fields.has(key)) fields.set(key, t.slice(eq + 1).trim());
  }
  const id = fields.get('id');
  if (id === undefined) return { ok: false, error: 'the TXT record has no id' };
  if (!/^[A-Za-z0-9]{1,32}$/.test(id)) return { ok: false, error: `the TXT record's id "${id}" is not 1 to 32 letters and digits` };
  return { ok: true, value: id };
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
function validMxPattern(p: string): boolean {
  const name = p.startsWith('*.') ? p.slice(2) : p;
  const labels = name.split('.');
  return labels.length >= 2 && labels.every((l) => LABEL.test(l));
}

/**
 * A policy file (RFC 8461 §3.2): "key: value" lines (CRLF or LF); version STSv1, mode, max_age
 * and, unless mode is none, at least one mx. Unknown keys are ignored; a repeated key other
 * than mx keeps its first value.
 */
export function parseStsPolicy(text: string): StsParse<StsPolicy> {
  if (Buffer.byteLength(text, 'utf8') > STS_MAX_POLICY_BYTES) return { ok: false, error: `policy larger than ${STS_MAX_POLICY_BYTES} bytes` };
  const fields = new Map<string, string>();
  const mx: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return { ok: false, error: `line ${i + 1} is not "key: value": ${JSON.stringify(line.slice(0, 80))}` };
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'mx') mx.push(value.toLowerCase().replace(/\.$/, ''));
    else if (!fields.has(key)) fields.set(key, value);
  }
  const version = fields.get('version');
  if (version !== 'STSv1') return { ok: false, error: version === undefined ? 'no version field' : `version "${version}" is not STSv1` };
  const mode = fields.get('mode');
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return { ok: false, error: mode === undefined ? 'no mode field' : `mode "${mode}" is not enforce, testing or none` };
  const age = fields.get('max_age');
  if (age === undefined) return { ok: false, error: 'no max_age field' };
  if (!/^\d{1,10}$/.test(age) || Number(age) > STS_MAX_AGE_LIMIT) return { ok: false, error: `max_age "${age}" is not a whole number of seconds from 0 to ${STS_MAX_AGE_LIMIT}` };
  const bad = mx.find((p) => !validMxPattern(p));
  if (bad !== undefined) return { ok: false, error: `mx "${bad}" is not a host name or *.domain pattern` };
  if (mode !== 'none' && mx.length === 0) return { ok: false, error: `mode ${mode} without any mx field` };
  return { ok: true, value: { mode, mx, maxAge: Number(age) } };
}

/**
 * Whether an MX host name matches a policy's mx pattern (RFC 8461 §4.1): exactly, or for
 * "*.example.com" a name with exactly one more label on the left ("mx.example.com", not
 * "a.b.example.com" nor "example.com"). Case-insensitive, trailing dot ignored.
 */
export function stsMxMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  const h = host.toLowerCase().replace(/\.$/, '');
  if (!p.startsWith('*.')) return p === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

/** Whether a policy allows an MX host. */
export function stsAllowsMx(policy: StsPolicy, host: string): boolean {
  return policy.mx.some((p) => stsMxMatches(p, host));
}

/**
 * Which MX hosts a domain's MTA-STS policy lets a delivery use (RFC 8461 §4.1): in enforce mode
 * only those it lists, and none listed is a temporary 4.7.5 (the message waits, never goes to
 * an unlisted host); testing and none narrow nothing (`refused` is for the log).
 */
export function stsMxPlan(policy: StsPolicy, domain: string, id: string, hosts: readonly string[]): { allowed: readonly string[]; refused: readonly string[]; reply: Reply | null } {
  const allowed = hosts.filter((h) => stsAllowsMx(policy, h));
  const refused = hosts.filter((h) => !allowed.includes(h));
  if (policy.mode !== 'enforce') return { allowed: hosts, refused, reply: null };
  const reply = allowed.length === 0 ? localReply(451, '4.7.5', `MTA-STS policy of ${domain} (mode enforce, id ${id}) not met: MX ${refused.join(', ')} not in the policy's mx ${policy.mx.join(', ')}`) : null;
  return { allowed, refused, reply };
}
