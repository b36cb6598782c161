// gateway.yaml addressRewriteEntries: Exchange's Edge address rewriting (New-AddressRewriteEntry
// -Name -InternalAddress -ExternalAddress -OutboundOnly -ExceptionList). Each entry maps an
// internal address, domain or set of subdomains to the address or domain the world sees; mail
// leaving the organisation is rewritten internal → external, mail coming in external → internal
// unless the entry is outboundOnly. None by default.
import { z } from 'zod';
import { isUnder, normaliseDomain } from './domain.js';
import { listOf, plainDomain } from './zod-helpers.js';

/** One side of an entry as written: a single address, a domain, or a domain and its subdomains ("*.contoso.com"). */
export type RewriteTarget =
  | { readonly kind: 'address'; readonly text: string; readonly local: string; readonly domain: string }
  | { readonly kind: 'domain'; readonly text: string; readonly domain: string }
  | { readonly kind: 'subdomains'; readonly text: string; readonly domain: string };

export interface AddressRewriteEntry {
  readonly name: string;
  readonly internalAddress: RewriteTarget;
  readonly externalAddress: RewriteTarget;
  readonly outboundOnly: boolean;
  /** Normalised domains a "*.domain" entry leaves alone (and their subdomains). */
  readonly exceptionList: readonly string[];
}

/** "david@contoso.com", "contoso.com" or "*.contoso.com" (the last only where `subdomains` is allowed). */
export function parseRewriteTarget(input: string, subdomains: boolean): { ok: true; value: RewriteTarget } | { ok: false; error: string } {
  const t = input.trim();
  const usage = subdomains ? 'an address (david@contoso.com), a domain (contoso.com) or a domain and its subdomains (*.contoso.com)' : 'an address (david@northwindtraders.com) or a domain (northwindtraders.com)';
  const at = t.lastIndexOf('@');
  if (at >= 0) {
    const local = t.slice(0, at);
    const d = normaliseDomain(t.slice(at + 1));
    if (local === '' || /[\s<>@"\\()[\],;:]/.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..') || !d.ok || d.value.startsWith('[')) {
      return { ok: false, error: `"${input}" is not ${usage}` };
    }
    return { ok: true, value: { kind: 'address', text: `${local}@${d.value}`, local, domain: d.value } };
  }
  const wildcard = t.startsWith('*.');
  if (wildcard && !subdomains) return { ok: false, error: `"${input}": a wildcard is allowed in internalAddress only; externalAddress is ${usage}` };
  const d = normaliseDomain(wildcard ? t.slice(2) : t);
  if (!d.ok || d.value.startsWith('[') || t.includes('*', wildcard ? 1 : 0)) return { ok: false, error: `"${input}" is not ${usage}` };
  return { ok: true, value: wildcard ? { kind: 'subdomains', text: `*.${d.value}`, domain: d.value } : { kind: 'domain', text: d.value, domain: d.value } };
}

function target(subdomains: boolean) {
  return z.string().transform((s, ctx): RewriteTarget => {
    const r = parseRewriteTarget(s, subdomains);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    return r.value;
  });
}

const entrySchema = z
  .strictObject({
    name: z.string().trim().min(1).max(64).describe('New-AddressRewriteEntry -Name: how logs and `mailgw check` call the entry.'),
    internalAddress: target(true).describe('-InternalAddress: what is rewritten on the way out: an address (david@contoso.com), a domain (contoso.com) or a domain and its subdomains (*.contoso.com).'),
    externalAddress: target(false).describe('-ExternalAddress: what the world sees: an address when internalAddress is one, else a domain.'),
    outboundOnly: z.boolean().default(false).describe('-OutboundOnly: rewrite mail leaving the organisation only; false (default) also rewrites mail coming in back from externalAddress to internalAddress. Must be true for *.domain entries.'),
    exceptionList: listOf(plainDomain).default([]).describe('-ExceptionList: subdomains a *.domain entry leaves alone (legal.contoso.com; their own subdomains too).'),
  })
  .superRefine((e, ctx) => {
    const i = e.internalAddress;
    const x = e.externalAddress;
    if (!i || !x) return; // reported at the key
    if (i.kind === 'address' && x.kind !== 'address') ctx.addIssue({ code: 'custom', path: ['externalAddress'], message: `internalAddress ${i.text} is one address: externalAddress must be one address too, not the domain ${x.text}` });
    if (i.kind !== 'address' && x.kind === 'address') ctx.addIssue({ code: 'custom', path: ['externalAddress'], message: `internalAddress ${i.text} is a domain: externalAddress must be a domain too (${x.domain}), not the address ${x.text}` });
    if (i.kind === 'subdomains' && !e.outboundOnly) {
      ctx.addIssue({ code: 'custom', path: ['outboundOnly'], message: `internalAddress ${i.text} maps many domains onto ${x.text}, which cannot be mapped back: set outboundOnly: true (as Exchange requires)` });
    }
    if (e.exceptionList.length > 0 && i.kind !== 'subdomains') {
      ctx.addIssue({ code: 'custom', path: ['exceptionList'], message: `exceptionList applies to an internalAddress with subdomains (*.contoso.com), not to ${i.text}` });
    }
    if (i.kind === 'subdomains') {
      e.exceptionList.forEach((d, n) => {
        if (!isUnder(d, i.domain)) ctx.addIssue({ code: 'custom', path: ['exceptionList', n], message: `${d} is not under ${i.text}: an exception must be one of its subdomains` });
      });
    }
    if (i.kind === x.kind && i.text.toLowerCase() === x.text.toLowerCase()) ctx.addIssue({ code: 'custom', path: ['externalAddress'], message: `externalAddress is internalAddress (${i.text}): the entry would change nothing` });
  });

/** The key an internal or external side is known by, for duplicates: case ignored. */
const sideKey = (t: RewriteTarget): string => `${t.kind}:${t.text.toLowerCase()}`;

export const addressRewriteEntriesSchema = listOf(entrySchema).superRefine((entries, ctx) => {
  const names = new Map<string, number>();
  const internals = new Map<string, number>();
  const externals = new Map<string, number>();
  entries.forEach((e, n) => {
    const name = e.name.toLowerCase();
    const seen = names.get(name);
    if (seen !== undefined) ctx.addIssue({ code: 'custom', path: [n, 'name'], message: `"${e.name}" is the name of entry ${seen + 1} as well: names must differ` });
    else names.set(name, n);
    const ik = sideKey(e.internalAddress);
    const si = internals.get(ik);
    if (si !== undefined) ctx.addIssue({ code: 'custom', path: [n, 'internalAddress'], message: `${e.internalAddress.text} is rewritten by "${entries[si]!.name}" already: one entry per internal address` });
    else internals.set(ik, n);
    if (e.outboundOnly) return;
    // Mail coming in to one external address or domain must map back to one internal one.
    const xk = sideKey(e.externalAddress);
    const sx = externals.get(xk);
    if (sx !== undefined) {
      ctx.addIssue({ code: 'custom', path: [n, 'externalAddress'], message: `${e.externalAddress.text} is also the external side of "${entries[sx]!.name}": mail coming in to it could not be mapped back to one internal address; set outboundOnly: true on all but one` });
    } else externals.set(xk, n);
  });
});

export const ADDRESS_REWRITE_ENTRY_KEYS = Object.keys(entrySchema.shape);
