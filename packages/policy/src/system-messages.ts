// Exchange's system messages (New-SystemMessage): the administrator's text for one enhanced
// status code, for senders inside or outside the organisation, shown in the delivery status
// notification under each recipient reported with that code; and the From of a DSN
// (ExternalPostmasterAddress for senders outside). Pure: the DSN sender asks.
import { insideDomains, matchDomain, type GatewayConfig } from '@mailgw/config';
import { disclaimerText } from '@mailgw/mail';

/**
 * The text for a DSN to `sender` about a recipient with enhanced status `status`, or null.
 * Inside: the sender's domain is an Authoritative or InternalRelay accepted domain (as the
 * transport rules' InOrganization).
 */
export function systemMessageText(g: Pick<GatewayConfig, 'acceptedDomains' | 'systemMessages'>, sender: string, status: string): string | null {
  if (g.systemMessages.length === 0) return null;
  const internal = senderInside(g, sender);
  const m = g.systemMessages.find((x) => x.dsnCode === status && x.internal === internal);
  return m ? disclaimerText(m.text) : null;
}

/** Whether a DSN's recipient (the original sender) is inside the organisation: its domain is Authoritative or InternalRelay. */
function senderInside(g: Pick<GatewayConfig, 'acceptedDomains'>, sender: string): boolean {
  const at = sender.lastIndexOf('@');
  return at > 0 && matchDomain(sender.slice(at + 1).toLowerCase(), insideDomains(g.acceptedDomains)) >= 0;
}

/**
 * The From of a DSN to `sender`: Exchange's ExternalPostmasterAddress for senders outside the
 * organisation when it is set, else postmaster@<default accepted domain>.
 */
export function dsnFromAddress(g: Pick<GatewayConfig, 'acceptedDomains' | 'defaultDomain' | 'externalPostmasterAddress'>, sender: string): string {
  return g.externalPostmasterAddress !== undefined && !senderInside(g, sender) ? g.externalPostmasterAddress : `postmaster@${g.defaultDomain}`;
}
