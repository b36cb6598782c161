// gateway.yaml remoteDomains: Exchange's remote domains (New-RemoteDomain / Set-RemoteDomain), the
// settings for mail leaving the organisation to a domain outside it: whether automatic replies,
// automatic forwards, read receipts and DSNs may go there. The entry whose domainName matches a
// recipient's domain most specifically applies (an exact name, then the longest *.domain, then
// "*", Exchange's Default); without a "*" entry the Default is Exchange's (everything allowed).
// Only the settings that act on the SMTP path are offered; the content conversion ones
// (ContentType, CharacterSet, LineWrapSize, TNEFEnabled …) belong to the mailbox server.
import { z } from 'zod';
import { parseDomainPattern, type DomainPattern } from './domain.js';
import { ciEnum } from './zod-helpers.js';

export const ALLOWED_OOF_TYPES = ['External', 'ExternalLegacy', 'InternalLegacy', 'None'] as const;
export type AllowedOofType = (typeof ALLOWED_OOF_TYPES)[number];

export interface RemoteDomain {
  readonly name: string;
  readonly domainName: DomainPattern;
  readonly allowedOOFType: AllowedOofType;
  readonly autoReplyEnabled: boolean;
  readonly autoForwardEnabled: boolean;
  readonly deliveryReportEnabled: boolean;
  readonly ndrEnabled: boolean;
}

/** Exchange's Default remote domain (Exchange 2013 and later): nothing withheld. */
export const DEFAULT_REMOTE_DOMAIN: RemoteDomain = {
  name: 'Default',
  domainName: { text: '*', domain: '', wildcard: true },
  allowedOOFType: 'External',
  autoReplyEnabled: true,
  autoForwardEnabled: true,
  deliveryReportEnabled: true,
  ndrEnabled: true,
};

/** Set-RemoteDomain parameters mailgw does not act on, with why: a clear error rather than "unrecognized key". */
const NOT_OFFERED: Record<string, string> = {
  isInternal: 'recipients in another forest of your own organisation: give their domain an InternalRelay accepted domain instead',
  contentType: 'content conversion is the mailbox server\'s (mailgw sends MIME as it received it)',
  characterSet: 'content conversion is the mailbox server\'s',
  nonMimeCharacterSet: 'content conversion is the mailbox server\'s',
  lineWrapSize: 'content conversion is the mailbox server\'s',
  tnefEnabled: 'TNEF (winmail.dat) is written by the mailbox server',
  displaySenderName: 'the From: display name is the mailbox server\'s to write',
  meetingForwardNotificationEnabled: 'meeting forward notifications are written by the mailbox server',
  trustedMailOutboundEnabled: 'cross-forest trust is Exchange\'s own',
  trustedMailInboundEnabled: 'cross-forest trust is Exchange\'s own',
  useSimpleDisplayName: 'the From: display name is the mailbox server\'s to write',
  ndrDiagnosticInfoEnabled: 'not offered',
  messageCountThreshold: 'not offered',
  smtpDaneMandatoryModeEnabled: 'DANE is a send connector setting here (tlsAuthLevel, dane)',
  requiredCharsetCoverage: 'content conversion is the mailbox server\'s',
  preferredInternetCodePageForShiftJis: 'content conversion is the mailbox server\'s',
  byteEncoderTypeFor7BitCharsets: 'content conversion is the mailbox server\'s',
};

export const REMOTE_DOMAIN_KEYS = ['name', 'domainName', 'allowedOOFType', 'autoReplyEnabled', 'autoForwardEnabled', 'deliveryReportEnabled', 'ndrEnabled'] as const;
const KNOWN_KEYS: ReadonlySet<string> = new Set(REMOTE_DOMAIN_KEYS);

const entry = z
  .object({
    name: z.string().trim().min(1).max(64).describe('-Name: how logs and `mailgw check` call it; unique.'),
    domainName: z
      .string()
      .transform((s, ctx): DomainPattern => {
        const r = parseDomainPattern(s);
        if (!r.ok) {
          ctx.addIssue({ code: 'custom', message: r.error });
          return z.NEVER;
        }
        return r.value;
      })
      .describe('-DomainName: fabrikam.com, *.fabrikam.com (it and its subdomains), or * (every domain outside: the Default).'),
    allowedOOFType: ciEnum(ALLOWED_OOF_TYPES).default('External').describe('-AllowedOOFType: None withholds out-of-office replies to the domain; External (default), ExternalLegacy and InternalLegacy let them go (which reply is written is the mailbox server\'s choice).'),
    autoReplyEnabled: z.boolean().default(true).describe('-AutoReplyEnabled: false withholds automatic replies to the domain (Auto-Submitted: auto-replied, Exchange\'s automatic replies).'),
    autoForwardEnabled: z.boolean().default(true).describe('-AutoForwardEnabled: false withholds mail your users\' rules forward automatically (X-MS-Exchange-Organization-AutoForwarded: true from a session trusted with organisation fields).'),
    deliveryReportEnabled: z.boolean().default(true).describe("-DeliveryReportEnabled: false withholds read receipts (RFC 8098) to the domain, and mailgw's own delay and success DSNs to senders there."),
    ndrEnabled: z.boolean().default(true).describe("-NDREnabled: false withholds mailgw's own non-delivery reports (failure DSNs) to senders in the domain."),
  })
  .passthrough()
  .superRefine((o, ctx) => {
    for (const k of Object.keys(o)) {
      if (KNOWN_KEYS.has(k)) continue;
      const why = NOT_OFFERED[k];
      ctx.addIssue({ code: 'custom', path: [k], message: why ? `${k} is a Set-RemoteDomain setting mailgw does not offer: ${why}` : `unknown key; a remote domain has ${REMOTE_DOMAIN_KEYS.join(', ')}` });
    }
  })
  .transform((o): RemoteDomain => ({ name: o.name, domainName: o.domainName, allowedOOFType: o.allowedOOFType, autoReplyEnabled: o.autoReplyEnabled, autoForwardEnabled: o.autoForwardEnabled, deliveryReportEnabled: o.deliveryReportEnabled, ndrEnabled: o.ndrEnabled }));

export const remoteDomainsSchema = z
  .array(entry)
  .default([])
  .superRefine((list, ctx) => {
    const names = new Map<string, number>();
    const domains = new Map<string, number>();
    list.forEach((r, i) => {
      const n = r.name.toLowerCase();
      if (names.has(n)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `"${r.name}" is the name of remoteDomains[${names.get(n)}] as well: names must differ` });
      else names.set(n, i);
      const d = r.domainName.domain === '' ? '*' : `${r.domainName.wildcard ? '*.' : ''}${r.domainName.domain}`;
      if (domains.has(d)) ctx.addIssue({ code: 'custom', path: [i, 'domainName'], message: `${r.domainName.text} is the domainName of remoteDomains[${domains.get(d)}] as well: one entry per domain` });
      else domains.set(d, i);
    });
  });
