// What a DSN says besides the facts: Exchange's system messages (New-SystemMessage: the
// administrator's text for one enhanced status code, for senders inside or outside the
// organisation, under each recipient reported with that code) and its From
// (ExternalPostmasterAddress for senders outside). Pure; built once per configuration (the
// texts read from their HTML then), asked by the DSN sender.
import { insideDomains, isInside, type GatewayConfig } from '@mailgw/config';
import { disclaimerText } from '@mailgw/mail';

export interface DsnWording {
  /** The administrator's text for a recipient with enhanced status `status`, in a DSN to a sender in `senderDomain`, or null. */
  explanation(senderDomain: string, status: string): string | null;
  /** The From of a DSN to a sender in `senderDomain`. */
  from(senderDomain: string): string;
}

/** Inside: the sender's domain is an Authoritative or InternalRelay accepted domain (as the transport rules' InOrganization). */
export function dsnWording(g: Pick<GatewayConfig, 'acceptedDomains' | 'defaultDomain' | 'systemMessages' | 'externalPostmasterAddress'>): DsnWording {
  const inside = insideDomains(g.acceptedDomains);
  const texts = new Map(g.systemMessages.map((m) => [`${m.dsnCode}/${m.internal}`, disclaimerText(m.text)]));
  const postmaster = `postmaster@${g.defaultDomain}`;
  const external = g.externalPostmasterAddress;
  return {
    explanation: (senderDomain, status) => (texts.size === 0 ? null : (texts.get(`${status}/${isInside(senderDomain, inside)}`) ?? null)),
    from: (senderDomain) => (external !== undefined && !isInside(senderDomain, inside) ? external : postmaster),
  };
}
