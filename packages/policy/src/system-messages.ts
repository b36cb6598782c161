// Exchange's system messages (New-SystemMessage): the administrator's text for one enhanced
// status code, for senders inside or outside the organisation, shown in the delivery status
// notification under each recipient reported with that code. Pure: the DSN sender asks.
import { insideDomains, matchDomain, type GatewayConfig } from '@mailgw/config';
import { disclaimerText } from '@mailgw/mail';

/**
 * The text for a DSN to `sender` about a recipient with enhanced status `status`, or null.
 * Inside: the sender's domain is an Authoritative or InternalRelay accepted domain (as the
 * transport rules' InOrganization).
 */
export function systemMessageText(g: Pick<GatewayConfig, 'acceptedDomains' | 'systemMessages'>, sender: string, status: string): string | null {
  if (g.systemMessages.length === 0) return null;
  const at = sender.lastIndexOf('@');
  const internal = at > 0 && matchDomain(sender.slice(at + 1).toLowerCase(), insideDomains(g.acceptedDomains)) >= 0;
  const m = g.systemMessages.find((x) => x.dsnCode === status && x.internal === internal);
  return m ? disclaimerText(m.text) : null;
}
