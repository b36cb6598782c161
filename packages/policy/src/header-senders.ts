// The header's From: and Sender: of an authenticated user's message, judged as MAIL FROM is.
// MAIL FROM is what the gateway checks, but From: is what the recipient reads: without this a
// user allowed only its own addresses could write `From: ceo@contoso.com` under its own MAIL
// FROM. Exchange 2013 and later refuse that at the end of DATA with 550 5.7.60 unless the user
// may send as the address (connector rights, Send As) or on its behalf (Sender: the user, and
// the From object's GrantSendOnBehalfTo, AD's publicDelegates, lists the user or a group of it).
// Anonymous mail's From: is sender authentication's to judge (DMARC), not this.
//
// Pure and in two steps, like MAIL's Send As: headerSenders() either decides or says what the
// directory must be asked first; the listener asks and calls it again with the answers.
import { findAddresses, formatAddress, parseEnvelopeAddress } from '@mailgw/mail';
import { accept, reject, type Decision } from './decision.js';
import { attributeValues, dnName, normaliseDn, type EntryAttributes } from './directory.js';
import type { Policy } from './compile.js';
import { REPLIES } from './replies.js';
import type { SendAsAnswer } from './send-as.js';
import { mailNeedsSendAs, senderPermission, type Session } from './stages.js';

/** What the directory said of the user sending on behalf of the object holding an address. */
export type SendOnBehalfAnswer =
  | { readonly kind: 'granted'; readonly dn: string; readonly why: string }
  | { readonly kind: 'not-granted'; readonly dn: string | null; readonly why: string }
  | { readonly kind: 'unavailable'; readonly why: string };

export interface HeaderSendersInput {
  /** The addresses of every From: field (local@domain). */
  readonly from: readonly string[];
  /** The address of the Sender: field; null: none. */
  readonly sender: string | null;
  /** Send As answers by lower-cased address: what an earlier call asked for (and MAIL FROM's own). */
  readonly sendAs?: ReadonlyMap<string, SendAsAnswer>;
  /** Send on Behalf answers by lower-cased From address: what an earlier call asked for. */
  readonly onBehalf?: ReadonlyMap<string, SendOnBehalfAnswer>;
}

export type HeaderSendersResult =
  /** Ask the directory these (lower-cased addresses), then call again with the answers. */
  | { readonly kind: 'ask'; readonly sendAs: readonly string[]; readonly onBehalf: readonly string[] }
  /** `grants`: the directory's grants that let it through, in words, for the audit log. */
  | { readonly kind: 'decided'; readonly decision: Decision; readonly grants: readonly string[] };

/** An address of the header, judged by the MAIL FROM rules. */
type Judged =
  | { readonly kind: 'permitted'; readonly decision: Decision }
  /** `key`: the address as parsed, lower-cased: what Send As is asked for and its answer found by. */
  | { readonly kind: 'ask'; readonly key: string }
  | { readonly kind: 'unavailable'; readonly decision: Decision }
  /** `key`: the address as parsed, lower-cased (what Send on Behalf is asked for); null: unreadable. */
  | { readonly kind: 'refused'; readonly why: string; readonly key: string | null };

/**
 * The addresses of a header's From (or Sender) field values, as headerSenders judges them: each
 * address found, and a value with an @ in which none is found as it stands (an obsolete route,
 * an unclosed bracket, spaces around the @: a reader's program may still show an address there),
 * so that it is refused as unreadable rather than passed unjudged.
 */
export function headerSenderAddresses(values: readonly string[]): string[] {
  return values.flatMap((v) => {
    const found = findAddresses(v).map((a) => formatAddress(a.address));
    return found.length > 0 ? found : v.includes('@') ? [v.trim()] : [];
  });
}

/** The user may send on behalf of others through their GrantSendOnBehalfTo only with the directory read for it. */
export function sendOnBehalfAttribute(policy: Policy, session: Session): string | null {
  return session.user?.directory ? (policy.directoryMap?.sendOnBehalfAttribute ?? null) : null;
}

export function headerSenders(policy: Policy, session: Session, input: HeaderSendersInput): HeaderSendersResult {
  const mode = policy.config.gateway.headerSenderCheck;
  if (mode === false) return { kind: 'decided', decision: accept(REPLIES.senderOk, 'header-senders-unchecked', 'headerSenderCheck is off'), grants: [] };
  const r = judgeHeaderSenders(policy, session, input);
  // audit: what would be refused (or could not be judged) is said, and let through.
  if (mode === 'audit' && r.kind === 'decided' && r.decision.verdict !== 'accept') {
    return { ...r, decision: accept(REPLIES.senderOk, 'header-senders-audit', `headerSenderCheck audit: would answer ${r.decision.reply.code} ${r.decision.reply.enhanced} (${r.decision.reason.code}): ${r.decision.reason.message}`) };
  }
  return r;
}

function judgeHeaderSenders(policy: Policy, session: Session, input: HeaderSendersInput): HeaderSendersResult {
  const decided = (decision: Decision, grants: readonly string[] = []): HeaderSendersResult => ({ kind: 'decided', decision, grants });
  const user = session.user;
  if (!user) return decided(accept(REPLIES.senderOk, 'header-senders-anonymous', 'not an authenticated session: the header From is for sender authentication (DMARC) to judge'));
  if (input.from.length === 0 && input.sender === null) return decided(accept(REPLIES.senderOk, 'header-senders-none', 'the header has no From or Sender address'));

  const judge = (address: string): Judged => {
    const parsed = parseEnvelopeAddress(address);
    if (!parsed.ok) return { kind: 'refused', why: `"${address}" is not an address mailgw can judge (${parsed.reason})`, key: null };
    const key = parsed.value.address.toLowerCase();
    const answer = input.sendAs?.get(key);
    const d = senderPermission(policy, session, parsed.value, answer);
    if (d.verdict === 'accept') return { kind: 'permitted', decision: d };
    if (d.reason.code === 'directory-unavailable') return { kind: 'unavailable', decision: d };
    if (answer === undefined && mailNeedsSendAs(session, d)) return { kind: 'ask', key };
    return { kind: 'refused', why: d.reason.message, key };
  };
  const key = (a: string) => a.toLowerCase();
  const from = [...new Map(input.from.map((a) => [key(a), a])).values()];
  const sender = input.sender === null ? null : { address: input.sender, judged: judge(input.sender) };
  const froms = from.map((address) => ({ address, judged: judge(address) }));
  const all = [...(sender ? [sender] : []), ...froms];

  const askSendAs = all.flatMap((x) => (x.judged.kind === 'ask' ? [x.judged.key] : []));
  if (askSendAs.length > 0) return { kind: 'ask', sendAs: [...new Set(askSendAs)], onBehalf: [] };
  const down = all.find((x) => x.judged.kind === 'unavailable');
  if (down?.judged.kind === 'unavailable') return decided(reject(REPLIES.directoryUnavailable, 'directory-unavailable', `header ${down === sender ? 'Sender' : 'From'} ${down.address}: ${down.judged.decision.reason.message}`));
  const refused = (field: string, address: string, why: string) => decided(reject(REPLIES.headerSenderDenied, 'header-sender-not-permitted', `header ${field} ${address}: ${why}`));
  if (sender?.judged.kind === 'refused') return refused('Sender', sender.address, sender.judged.why);

  // A From: the user may not send as passes when Sender: is the user's and the From object lets it send on its behalf.
  const onBehalfAttr = sendOnBehalfAttribute(policy, session);
  const grants = all.flatMap((x) => (x.judged.kind === 'permitted' && x.judged.decision.reason.code === 'send-as-right' ? [`header ${x === sender ? 'Sender' : 'From'}: ${x.judged.decision.reason.message}`] : []));
  const askOnBehalf: string[] = [];
  for (const f of froms) {
    if (f.judged.kind !== 'refused') continue;
    const fromKey = f.judged.key;
    if (!sender || onBehalfAttr === null || fromKey === null) return refused('From', f.address, `${f.judged.why}${sender ? '' : '; no Sender field names the user (Send on Behalf)'}`);
    const answer = input.onBehalf?.get(fromKey);
    if (answer === undefined) {
      askOnBehalf.push(fromKey);
      continue;
    }
    if (answer.kind === 'unavailable') return decided(reject(REPLIES.directoryUnavailable, 'directory-unavailable', `the directory could not say whether ${user.name} may send on behalf of ${f.address}: ${answer.why}`));
    if (answer.kind === 'not-granted') return refused('From', f.address, `${f.judged.why}; Send on Behalf: ${answer.dn ? `${answer.dn}: ` : ''}${answer.why}`);
    grants.push(`header From ${f.address}: sent on behalf of ${answer.dn} by ${user.name} (Sender ${sender.address}): ${answer.why}`);
  }
  if (askOnBehalf.length > 0) return { kind: 'ask', sendAs: [], onBehalf: [...new Set(askOnBehalf)] };
  const said = all.map((x) => `${x === sender ? 'Sender' : 'From'} ${x.address}: ${x.judged.kind === 'permitted' ? x.judged.decision.reason.code : 'send-on-behalf'}`);
  return decided(accept(REPLIES.senderOk, 'header-senders-permitted', `user ${user.name} may send as the header's ${said.join(', ')}`), grants);
}

/**
 * Send on Behalf (Exchange's GrantSendOnBehalfTo, AD's publicDelegates): the DNs the object
 * holding the From address lists, against the user's DN and its groups (nested).
 */
export function sendOnBehalfDecision(delegates: readonly string[], user: { readonly dn: string; readonly groups: readonly string[] }): { readonly granted: boolean; readonly why: string } {
  const listed = new Set(delegates.map(normaliseDn));
  if (listed.has(normaliseDn(user.dn))) return { granted: true, why: `its GrantSendOnBehalfTo lists ${user.dn}` };
  const group = user.groups.find((g) => listed.has(normaliseDn(g)));
  if (group !== undefined) return { granted: true, why: `its GrantSendOnBehalfTo lists ${dnName(group)}, a group the user is in` };
  return { granted: false, why: delegates.length === 0 ? 'it grants nobody Send on Behalf' : `its GrantSendOnBehalfTo (${delegates.length}) lists neither the user nor a group it is in` };
}

/** The Send on Behalf answer from the From object's entry as the directory returned it (entryAttributes). */
export function sendOnBehalfAnswer(address: string, entry: EntryAttributes, attribute: string, user: { readonly dn: string; readonly groups: readonly string[] }): SendOnBehalfAnswer {
  if (entry.kind === 'unavailable') return entry;
  if (entry.kind === 'not-found') return { kind: 'not-granted', dn: null, why: `no directory object holds ${address}` };
  const v = sendOnBehalfDecision(attributeValues(entry.attributes, attribute), user);
  return { kind: v.granted ? 'granted' : 'not-granted', dn: entry.dn, why: v.why };
}
