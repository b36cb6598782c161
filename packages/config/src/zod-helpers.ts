// Small zod building blocks that turn admin-friendly text into typed values with clear errors.
import { z } from 'zod';
import { parseIpRange, parseIp, type IpRange, type IpAddress } from './ip-range.js';
import { formatDuration, parseDuration, parseSize } from './units.js';
import { normaliseDomain } from './domain.js';

/** Case-insensitive enum, like Exchange's parameters: "basicauth" reads as "BasicAuth". */
export function ciEnum<const T extends readonly string[]>(values: T) {
  const byLower = new Map(values.map((v) => [v.toLowerCase(), v] as const));
  return z.string().transform((s, ctx): T[number] => {
    const hit = byLower.get(s.trim().toLowerCase());
    if (hit === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${s}" is not one of: ${values.join(', ')}` });
      return z.NEVER;
    }
    return hit;
  });
}

/** A list written as YAML list or as Exchange's comma-separated string ("Tls, BasicAuth"). */
export function listOf<S extends z.ZodType>(item: S) {
  return z.preprocess(
    (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v),
    z.array(item),
  );
}

export function sizeBytes(min: number, max: number) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const r = parseSize(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    if (r.value < min || r.value > max) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is out of range (${min}-${max} bytes)` });
      return z.NEVER;
    }
    return r.value;
  });
}

/** A size in bytes in range (as sizeBytes), or "unlimited" (→ null), as Exchange's Unlimited sizes. */
export function sizeOrUnlimited(min: number, max: number) {
  return z.union([z.number(), z.string()]).transform((v, ctx): number | null => {
    if (typeof v === 'string' && v.trim().toLowerCase() === 'unlimited') return null;
    const r = parseSize(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: `${r.error}, or "unlimited"` });
      return z.NEVER;
    }
    if (r.value < min || r.value > max) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is out of range (${min}-${max} bytes, or "unlimited")` });
      return z.NEVER;
    }
    return r.value;
  });
}

export function durationMs(minMs = 0, maxMs = 365 * 86_400_000) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const r = parseDuration(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    if (r.value < minMs || r.value > maxMs) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is out of range: ${minMs === 0 ? '0' : formatDuration(minMs)} to ${formatDuration(maxMs)}` });
      return z.NEVER;
    }
    return r.value;
  });
}

/** A whole number in range, or "unlimited" (→ null). */
export function countOrUnlimited(min: number, max: number) {
  return z.union([z.number(), z.string()]).transform((v, ctx): number | null => {
    if (typeof v === 'string') {
      if (v.trim().toLowerCase() === 'unlimited') return null;
      if (!/^\d+$/.test(v.trim())) {
        ctx.addIssue({ code: 'custom', message: `"${v}" is not a number or "unlimited"` });
        return z.NEVER;
      }
      v = Number(v);
    }
    if (!Number.isInteger(v) || v < min || v > max) {
      ctx.addIssue({ code: 'custom', message: `${v} is out of range (${min}-${max}, or "unlimited")` });
      return z.NEVER;
    }
    return v;
  });
}

export function intIn(min: number, max: number) {
  return z.number().int(`must be a whole number`).min(min, `must be at least ${min}`).max(max, `must be at most ${max}`);
}

export const ipRange = z.string().transform((s, ctx): IpRange => {
  const r = parseIpRange(s);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  }
  return r.value;
});

export interface Binding {
  /** Canonical local address; '0.0.0.0' or '::' for wildcards. */
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
  readonly wildcard: boolean;
  /** As written. */
  readonly text: string;
  readonly ip: IpAddress;
}

export const binding = z.string().transform((s, ctx): Binding => {
  const text = s.trim();
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a binding; write IP:port, e.g. 0.0.0.0:25, 127.0.0.1:2525 or [::]:25` });
    return z.NEVER;
  }
  const ipText = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `"${s}": port must be 1-65535` });
    return z.NEVER;
  }
  const ip = parseIp(ipText);
  if (!ip.ok) {
    ctx.addIssue({ code: 'custom', message: `"${s}": ${ip.error}` });
    return z.NEVER;
  }
  const v = ip.value;
  const multicast = v.family === 4 ? v.value >> 28n === 0xen : v.value >> 120n === 0xffn;
  if (multicast || (v.family === 4 && v.value === 0xffffffffn)) {
    ctx.addIssue({ code: 'custom', message: `"${s}": a multicast or broadcast address cannot be bound` });
    return z.NEVER;
  }
  return { address: v.text, family: v.family, port, wildcard: v.value === 0n, text, ip: v };
});

/** A DNS name (ASCII or IDN) such as an FQDN; lower-cased, trailing dot removed. */
export const hostname = z.string().transform((s, ctx) => {
  const h = s.trim().toLowerCase().replace(/\.$/, '');
  if (!/^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(h)) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a valid host name` });
    return z.NEVER;
  }
  return h;
});

/** A binding given on a command line (IP:port); null when it is not one. */
export function parseBinding(text: string): Binding | null {
  const r = binding.safeParse(text);
  return r.success ? r.data : null;
}

/** The name of an environment variable (a secret's `…Env` key). */
export const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');

/**
 * A secret given inline (`key`), from an environment variable (`keyEnv`) or from a file
 * (`keyFile`): at most one of them, the second one named in the error. The keys given, in
 * that order (validate.ts reads the variable or the file).
 */
export function secretSources(o: Record<string, unknown>, key: string, ctx: z.RefinementCtx): string[] {
  const given = [key, `${key}Env`, `${key}File`].filter((k) => o[k] !== undefined);
  if (given.length > 1) ctx.addIssue({ code: 'custom', message: `give one of ${key}, ${key}Env and ${key}File, not ${given.join(' and ')}`, path: [given[1]!] });
  return given;
}

/** A mailbox address from config, normalised: local part lower-cased, domain as ASCII. */
export const mailboxAddress = z.string().transform((s, ctx) => {
  const t = s.trim();
  const at = t.lastIndexOf('@');
  const local = at > 0 ? t.slice(0, at) : '';
  const d = at > 0 ? normaliseDomain(t.slice(at + 1)) : null;
  if (!d || !d.ok || local === '' || /[\s<>@"]/.test(local)) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a mailbox address like user@contoso.com` });
    return z.NEVER;
  }
  return `${local.toLowerCase()}@${d.value}`;
});

/** A domain name from config (no wildcard, no address literal), normalised. */
export const plainDomain = z.string().transform((s, ctx) => {
  const d = normaliseDomain(s);
  if (!d.ok || d.value.startsWith('[')) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a domain (contoso.com)` });
    return z.NEVER;
  }
  return d.value;
});
