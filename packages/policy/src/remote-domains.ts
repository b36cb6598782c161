// Exchange's remote domains as decisions: which settings apply to a domain outside the
// organisation (the most specific domainName, else the Default), whether a message of a given
// type may go to a recipient there, and whether mailgw's own DSNs may go to a sender there. Each
// answer that withholds says why, naming the remote domain and the setting.
import { DEFAULT_REMOTE_DOMAIN, insideDomains, isInside, matchDomain, type DomainPattern, type GatewayConfig, type MessageType, type RemoteDomain } from '@mailgw/config';
import { formatAddress, type MailAddress } from '@mailgw/mail';

/** The remote domain whose domainName matches `domain` most specifically; Exchange's Default (everything allowed) when none does. */
export function remoteDomainFor(domain: string, list: readonly RemoteDomain[]): RemoteDomain {
  const i = matchDomain(domain.toLowerCase(), list.map((r) => r.domainName));
  return i >= 0 ? list[i]! : DEFAULT_REMOTE_DOMAIN;
}

const where = (rd: RemoteDomain, setting: string) => `remote domain "${rd.name}" (${rd.domainName.text}): ${setting}`;

/** Why a message of `types` may not go to a recipient under `rd` (null: it may). */
export function remoteDomainWithholds(rd: RemoteDomain, types: ReadonlySet<MessageType>): string | null {
  if (types.has('OOF') && rd.allowedOOFType === 'None') return `an automatic reply, and ${where(rd, 'allowedOOFType None')}`;
  if (types.has('OOF') && !rd.autoReplyEnabled) return `an automatic reply, and ${where(rd, 'autoReplyEnabled false')}`;
  if (types.has('AutoForward') && !rd.autoForwardEnabled) return `an automatic forward, and ${where(rd, 'autoForwardEnabled false')}`;
  if (types.has('ReadReceipt') && !rd.deliveryReportEnabled) return `a read receipt, and ${where(rd, 'deliveryReportEnabled false')}`;
  return null;
}

/** Whether any remote domain withholds anything from messages passing through (only then is the filter set up). */
export function remoteDomainsRestrictMessages(list: readonly RemoteDomain[]): boolean {
  return list.some((r) => r.allowedOOFType === 'None' || !r.autoReplyEnabled || !r.autoForwardEnabled || !r.deliveryReportEnabled);
}

export interface WithheldRecipient {
  readonly recipient: MailAddress;
  readonly reason: string;
}

/**
 * The recipients a message of `types` is withheld from: those outside the organisation (not in
 * an Authoritative or InternalRelay domain, `inside`) whose remote domain does not take it.
 */
export function withheldRecipients(recipients: readonly MailAddress[], types: ReadonlySet<MessageType>, list: readonly RemoteDomain[], inside: readonly DomainPattern[]): WithheldRecipient[] {
  if (types.size === 0) return [];
  const out: WithheldRecipient[] = [];
  for (const r of recipients) {
    if (isInside(r.domain, inside)) continue;
    const why = remoteDomainWithholds(remoteDomainFor(r.domain, list), types);
    if (why) out.push({ recipient: r, reason: `${formatAddress(r)}: ${why}` });
  }
  return out;
}

/**
 * The remote domains' word on a message: whom it is withheld from, and why in words (the filter's
 * log line, explain's stage). `types`: the message's types as messageTypes reads them.
 */
export function remoteDomainsJudgement(recipients: readonly MailAddress[], types: ReadonlySet<MessageType>, list: readonly RemoteDomain[], inside: readonly DomainPattern[]): { readonly withheld: readonly WithheldRecipient[]; readonly reason: string } {
  const withheld = withheldRecipients(recipients, types, list, inside);
  if (withheld.length > 0) return { withheld, reason: `withheld from ${withheld.map((w) => w.reason).join('; ')}` };
  return { withheld, reason: types.size === 0 ? 'no automatic reply, forward or read receipt' : `a ${[...types].join(', ')} message; no remote domain withholds it` };
}

/** mailgw's own DSNs by kind: a failure is an NDR, the rest (delay, success, relayed, expanded) delivery reports. */
export type DsnReportKind = 'failed' | 'delayed' | 'success';

/**
 * Whether mailgw may send its own DSN of `kind` to a sender in `senderDomain` (null: it may).
 * Senders inside the organisation always get theirs: remote domains are for domains outside.
 */
export function dsnWithheld(g: Pick<GatewayConfig, 'remoteDomains' | 'acceptedDomains'>): (senderDomain: string, kind: DsnReportKind) => string | null {
  if (g.remoteDomains.every((r) => r.ndrEnabled && r.deliveryReportEnabled)) return () => null;
  const inside = insideDomains(g.acceptedDomains);
  return (senderDomain, kind) => {
    if (isInside(senderDomain, inside)) return null;
    const rd = remoteDomainFor(senderDomain, g.remoteDomains);
    if (kind === 'failed') return rd.ndrEnabled ? null : where(rd, 'ndrEnabled false');
    return rd.deliveryReportEnabled ? null : where(rd, 'deliveryReportEnabled false');
  };
}
