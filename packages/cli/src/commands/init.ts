// mailgw init [DIR] [--domain D] [--hostname H] [--data-dir PATH] [--force]: writes a commented
// gateway.yaml and the three connectors of an Exchange Edge/Hub (Default on port 25, Client on
// 587 with AUTH after STARTTLS, a printer relay) for the admin's own domain and host name, so
// that `mailgw check` passes on it as written. Refuses to overwrite existing files without
// --force, and then writes nothing at all.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface InitOptions {
  readonly dir?: string | undefined;
  readonly domain?: string | undefined;
  readonly hostname?: string | undefined;
  readonly dataDir?: string | undefined;
  readonly force?: boolean | undefined;
}

const DNS_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/;

/** The files init writes, relative to DIR, with their text. Pure. */
export function initFiles(o: { domain: string; hostname: string; dataDir: string }): Array<{ file: string; text: string }> {
  const { domain, hostname } = o;
  const dataDir = JSON.stringify(o.dataDir);
  const mailboxes = JSON.stringify(`maildir:${path.posix.join(o.dataDir, 'mailboxes')}`);
  return [
    {
      file: 'gateway.yaml',
      text: `# mailgw organisation config, written by \`mailgw init\` for ${domain} (host ${hostname}).
# Connectors (who may connect, authenticate and relay) live in connectors.d/, one per file.
# Check every change with:  mailgw check --config <this file>
# Every key is documented in README.md ("Configuration reference").

fqdn: ${hostname}                # banner, EHLO, Received headers, DSNs; PTR of this host's address should match
dataDir: ${dataDir}              # certificates, logs, embedded Redis (relative to this file, or absolute)

# Accepted domains (Exchange: Get-AcceptedDomain). Mail to any other domain is relay and needs
# ms-Exch-SMTP-Accept-Any-Recipient on the connector that received it.
#   Authoritative  every mailbox is here (unknown ones are rejected when \`recipients\` is set)
#   InternalRelay  some mailboxes are here, the rest go on to another server
#   ExternalRelay  none are here; accepted and relayed (e.g. a domain you are backup MX for)
acceptedDomains:
  - domain: ${domain}
    type: Authoritative
    default: true                # DSNs come from postmaster@${domain}

# Recipient lookup for Authoritative domains: uncomment to reject unknown mailboxes with
# "550 5.1.1 User unknown". A list, or { file: recipients.txt } with one address per line.
# recipients:
#   - postmaster@${domain}

# Mailboxes on a server behind mailgw (the smtp:// route below) and no list or directory here?
# Ask that server at RCPT instead, so unknown recipients are refused, not bounced later to a
# forged sender (README "Recipient verification at the next hop"). Leave recipients out then.
# recipientVerification:
#   domains: [${domain}]

# A stolen password should send a day's allowance, not a spam run: recipients each authenticated
# user may address in 24 hours (Exchange's throttling policy; unlimited unless set).
# throttlingPolicy:
#   recipientRateLimit: 2000

# SMTP AUTH accounts for the Client connector (port 587). Make a hash with:
#   printf '%s' 'the password' | mailgw hash-password
users: []
#  - name: alice
#    passwordHash: "$scrypt$ln=15,r=8,p=1$...$..."
#    addresses: [alice@${domain}]   # what alice may use as MAIL FROM

# Addresses the Internet may not mail (Exchange's recipient filter block list), e.g. an
# all-staff list; your own users still can. Uncomment to use.
# recipientFilterConfig:
#   blockListEnabled: true
#   blockedRecipients: [allstaff@${domain}]

# Exchange 5.5's "can NEVER route" list: these clients never relay, whatever connector or AUTH.
relayDeniedIPRanges: []
# Refused at connect (IP Block List).
blockedIPRanges: []
# Load balancers that may send a PROXY header (version 1 or 2) carrying the real client address.
trustedProxies: []

# Exchange's Edge attachment filtering: mail carrying programs, scripts, shortcuts or installers
# (*.exe, *.js, *.vbs, *.lnk, *.msi, ...) is refused with "550 5.7.1 Message rejected due to
# unacceptable attachments". Your users' own submissions (Client) are not filtered.
attachmentFilter:
  action: Reject                 # or Strip (delivered without the attachment), SilentDelete (delivered to nobody)
  exceptionConnectors: [Client]
  # entries: [FileName:*.exe, ContentType:application/x-msdownload]   # replaces the default list

# Exchange's Edge transport rules (README "Transport rules"), e.g. tag mail from the Internet:
# transportRules:
#   - name: External tag
#     fromScope: NotInOrganization
#     sentToScope: InOrganization
#     prependSubject: "[External] "
#   - name: Legal footer            # a disclaimer under mail your people send out
#     fromScope: InOrganization
#     sentToScope: NotInOrganization
#     applyHtmlDisclaimerText: "<p>This message is confidential.</p>"
#     # with a directory: a signature per sender, e.g. "<p>%%DisplayName%%, %%Title%%</p>"
#     exceptIfMessageTypeMatches: [Calendaring, Signed, Encrypted]   # not on meeting requests
#     # with a directory: fromMemberOf: [Sales] (only for members of a group, nested ones too)
#     # or senderADAttributeContainsWords: ["Department:Legal"] (by an attribute of the sender's object)

# Exchange Online or Google behind mailgw? Seal (ARC) what mailgw verified and changed, so they
# trust its verdicts (list ${domain} in their trusted ARC sealers). The key:
#   mailgw dkim keygen ${domain} --selector arc1
# senderAuthentication:
#   arcSeal: { domain: ${domain}, selector: arc1 }

# Remote domains (Exchange's Set-RemoteDomain): e.g. no automatic forwarding to the outside:
# remoteDomains:
#   - { name: Default, domainName: "*", autoForwardEnabled: false }

# Your own words in bounces, per status code (Exchange's New-SystemMessage), and copies of some
# failures for postmaster@${domain} (GenerateCopyOfDSNFor):
# systemMessages:
#   - { dsnCode: 5.1.1, internal: false, text: "This address does not exist here. Check the spelling." }
# generateCopyOfDSNFor: [5.1.1]

# Exchange's Edge address rewriting (README "Address rewriting"), e.g. after a merger:
# addressRewriteEntries:
#   - { name: Merger, internalAddress: fabrikam.example, externalAddress: ${domain} }

# The pickup directory (Exchange's): *.eml files dropped here are sent, and \`mailgw sendmail\`
# hands mail to it. Link it for cron and scripts:  ln -s /opt/mailgw/bin/mailgw /usr/sbin/sendmail
# (README "The pickup directory and mailgw sendmail"). Made at start, mode 0700.
pickupDirectoryPath: ${JSON.stringify(path.posix.join(o.dataDir, 'pickup'))}

# Next hops by recipient domain, first match wins (used by the delivery workers).
routes:
  - domains: [${domain}]
    to: ${mailboxes}
    # to: smtp://exchange.${domain}:25   # or: your mailbox server; mailgw is then its gateway
  - domains: ["*"]
    to: mx                       # everything else: direct delivery by MX lookup

redis:
  # url: unix:///run/redis/redis.sock   # or redis://host:6379, or REDIS_URL; without any, mailgw start runs its own
  prefix: "{mailgw}"

# Log retention (Exchange's defaults): files older or beyond the size are deleted hourly.
logs:
  messageTrackingLogMaxAge: 30d
  messageTrackingLogMaxDirectorySize: 1000MB
  receiveProtocolLogMaxAge: 30d
  receiveProtocolLogMaxDirectorySize: 250MB
  sendProtocolLogMaxAge: 30d
  sendProtocolLogMaxDirectorySize: 250MB

# On SIGTERM (systemctl stop) deliveries in progress get this long; keep the unit's
# TimeoutStopSec above it.
queue:
  drainTimeout: 30s

# Prometheus /metrics, /healthz and the dashboard on loopback; uncomment to enable.
# http: { listen: "127.0.0.1:9025" }
`,
    },
    {
      file: 'connectors.d/10-default.yaml',
      text: `# Default: the Internet-facing connector (Exchange: "Default ${hostname}", usage Internet).
# Anyone may connect and send mail TO ${domain}; nobody may relay through it.
# Port 25 needs CAP_NET_BIND_SERVICE (the systemd unit gives it) or root.
name: Default
usage: Internet                  # => permissionGroups [AnonymousUsers], authMechanism [Tls]
bindings:
  - 0.0.0.0:25
  - "[::]:25"
# remoteIPRanges left out = all IPv4 and IPv6 addresses. A more specific connector on the
# same binding (20-printers-relay.yaml) takes the clients in its ranges.
maxMessageSize: 36MB
maxRecipientsPerMessage: 200
maxInboundConnectionPerSource: 20
connectionTimeout: 10m
connectionInactivityTimeout: 5m
protocolLoggingLevel: None       # Verbose: an SMTP protocol log in dataDir/logs/protocol/Default
# tlsCertificate: tls/fullchain.pem   # relative to gateway.yaml; without these, a self-signed
# tlsKey: tls/privkey.pem              # certificate for fqdn (README: certificates from certbot)
`,
    },
    {
      file: 'connectors.d/20-printers-relay.yaml',
      text: `# Anonymous relay for devices that cannot authenticate (printers, scanners, line-of-business
# apps). Exchange recipe: a Custom connector on the Default binding whose remoteIPRanges are
# the devices, AnonymousUsers, plus ms-Exch-SMTP-Accept-Any-Recipient for ANONYMOUS LOGON.
# It shares port 25 with Default; the smaller remote range wins, so only these clients are
# served by this connector.
name: Printers Relay
usage: Custom
bindings:
  - 0.0.0.0:25
remoteIPRanges:
  - 192.0.2.0/28                 # PLACEHOLDER (TEST-NET-1): replace with your devices' addresses
permissionGroups: [AnonymousUsers]
authMechanism: [Tls]
permissions:
  - user: NT AUTHORITY\\ANONYMOUS LOGON
    extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient]
# mailgw refuses to start an anonymous relay over more than a /24 unless allowOpenRelay: true.
`,
    },
    {
      file: 'connectors.d/30-client.yaml',
      text: `# Client: authenticated submission (Exchange: "Client Frontend ${hostname}", usage Client).
# Users AUTH (PLAIN/LOGIN) after STARTTLS and may then relay anywhere, sending as their own
# addresses (gateway.yaml users[].addresses).
name: Client
usage: Client                    # => ExchangeUsers; Tls, BasicAuth, BasicAuthRequireTLS; 5 msg/min per user
bindings:
  - 0.0.0.0:587
  - "[::]:587"
requireTLS: true                 # MAIL before STARTTLS: 451 5.7.3 STARTTLS is required to send mail
maxMessageSize: 36MB
# tlsCertificate: tls/fullchain.pem   # relative to gateway.yaml; without these, a self-signed
# tlsKey: tls/privkey.pem              # certificate for fqdn (README: certificates from certbot)
`,
    },
  ];
}

function dnsName(s: string): string | null {
  const v = s.trim().toLowerCase().replace(/\.$/, '');
  return DNS_NAME.test(v) ? v : null;
}

export function runInit(o: InitOptions, out: NodeJS.WritableStream, err: NodeJS.WritableStream): number {
  const machine = os.hostname();
  const hostname = dnsName(o.hostname ?? machine);
  if (!hostname) {
    err.write(`mailgw init: ${o.hostname !== undefined ? `--hostname "${o.hostname}"` : `this machine's host name "${machine}"`} is not a fully qualified host name like mail.contoso.com; give --hostname\n`);
    return 2;
  }
  const wanted = o.domain ?? hostname.slice(hostname.indexOf('.') + 1);
  const domain = dnsName(wanted);
  if (!domain) {
    err.write(`mailgw init: ${o.domain !== undefined ? '--domain' : 'the domain taken from the host name,'} "${wanted}" is not a domain like contoso.com; give --domain\n`);
    return 2;
  }
  const dir = path.resolve(o.dir ?? '.');
  const files = initFiles({ domain, hostname, dataDir: o.dataDir ?? './var' });
  const existing = files.filter((f) => existsSync(path.join(dir, f.file))).map((f) => path.join(dir, f.file));
  if (existing.length && !o.force) {
    err.write(`mailgw init: nothing written: ${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''} (--force overwrites)\n`);
    return 1;
  }
  for (const f of files) {
    const p = path.join(dir, f.file);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, f.text, { mode: 0o640 });
  }
  out.write(
    `Wrote ${files.map((f) => path.join(dir, f.file)).join(', ')}\n` +
      `for ${domain} on ${hostname}: Default on port 25, Client on 587 (AUTH after STARTTLS), Printers Relay for 192.0.2.0/28 (replace it).\n` +
      `Next: edit them, then  mailgw check --config ${path.join(dir, 'gateway.yaml')}\n`,
  );
  return 0;
}
