// What `mailgw --help` and `mailgw <command> --help` print: one usage text per command.
import { readFileSync } from 'node:fs';

const PATHS = `  --config FILE       gateway config (default: gateway.yaml)
  --connectors DIR    connector files (default: connectors.d beside the config)
  --send-connectors DIR
                      send connector files (default: send-connectors.d beside the config, if present)`;

export const QUEUE_USAGE = `mailgw queue list [--json]                    queues per next hop: messages, oldest, next retry, last error
mailgw queue status [--json]                  queue shards: prefix, slot, Redis master, messages; placement warnings
mailgw queue show <queue-id> [--json]         envelope, per-recipient status, attempts, last reply, tracking events
mailgw queue retry <queue-id> | --hop H | --all [--verbose|--json]
                                              try again now; --hop/--all print counts
mailgw queue suspend <hop>                    stop delivering to a next hop (its mail stays queued)
mailgw queue resume <hop>                     deliver to it again, at once
mailgw queue remove <queue-id> [--with-ndr]   delete a message (with an NDR to the sender)
mailgw queue export <queue-id> [--replay]     the raw message on stdout; --replay: X-Sender/X-Receiver first
                                              (the recipients still pending), to drop into a pickup directory
mailgw queue messages [FILTERS] [--limit N] [--after ID] [--json]
                                              one line per message, oldest first: id, status, from, to,
                                              size, age, last error; --after the last id shown: the next page
mailgw queue suspend|resume <queue-id> | FILTERS [--yes]
                                              hold messages untried (they still expire) / try them again now
mailgw queue remove FILTERS [--with-ndr] [--yes]
mailgw queue retry FILTERS [--yes]            the same filters on remove and retry
mailgw queue resubmit <queue-id> [--reset-state]
                                              put a poison message back in the queue after a fix
FILTERS: --sender A  --recipient A (* wildcards, case-insensitive)  --hop H  --older-than 1h
         --status Active|Ready|Retry|Suspended|Poison  --subject TEXT (contained, case-insensitive)
A filtered action on more than 10 messages asks for confirmation; from a non-interactive stdin
it needs --yes, whatever the count.
`;

export const QUARANTINE_USAGE = 'Usage: mailgw quarantine release [--to ADDRESS]… [--from ADDRESS] [--dry-run] [--config FILE] FILE…\n';

export const COMMAND_USAGE: Readonly<Record<string, string>> = {
  check: `Usage: mailgw check [--config FILE] [--connectors DIR] [--json]

Validate gateway.yaml, connectors.d/ and send-connectors.d/; show what each connector lets each
principal do, and which send connector each accepted domain and a remote domain leave through.
Exits 1 when the configuration has errors (each names its file and key).

Options:
${PATHS}
  --json              the connectors and their rights as JSON
`,
  explain: `Usage: mailgw explain --binding IP:PORT --client-ip IP [options]
       mailgw explain --scenario FILE [options]
       mailgw explain --route RCPT@DOMAIN [--mail-from ADDR] [--json]
       mailgw explain --pickup FILE [--json]

Show what the gateway would answer a client at each SMTP stage, and why; or (--route) which
send connector a recipient leaves through, its next hops and TLS policy, and why.

Options:
${PATHS}
  --binding IP:PORT   the local address the client connects to (required without --scenario)
  --client-ip IP      the client's address (required without --scenario)
  --scenario FILE     a YAML/JSON scenario (keys as in test/policy/*.yaml: connections, helo,
                      authFailures, recentMessages, data, …); the options here override it
  --tls               the client has done STARTTLS
  --auth USER         the client has authenticated as USER
  --route ADDR        explain outbound routing for this recipient (with --mail-from: for that sender)
  --pickup FILE       what the pickup directory would do with this message file (or why a *.bad was not sent)
  --mail-from ADDR    the MAIL FROM address
  --rcpt ADDR         a RCPT TO address (repeat for more)
  --size N            the SIZE= the client announces, in bytes
  --message-size N    the message's size without SIZE= (bytes, or 15KB, 30MB): the scenario goes on
                      to DATA, judged by the connector's and the recipients' own limits
  --back-pressure L   answer as under back pressure L (normal, medium, high): who still gets 250
  --header 'F: V'     a header field of the message (repeat for more); the scenario then goes on
                      to DATA: e.g. --header 'From: info@contoso.com' for an authenticated user's
                      From (headerSenderCheck, Send As, Send on Behalf with --header 'Sender: …')
  --attachment NAME   an attached file (repeat for more), judged by the transport rules and the
                      attachment filter; 'files.zip: setup.exe, readme.txt' names the files in
                      an archive
  --json              the stages as JSON
`,
  init: `Usage: mailgw init [DIR] [--domain contoso.com] [--hostname mail.contoso.com] [--data-dir PATH] [--force]

Write a commented gateway.yaml and connectors.d/ into DIR (default: the current directory)
for your domain and host name: Default (port 25), Client (port 587, AUTH after STARTTLS) and
Printers Relay connectors. Existing files are left alone unless --force.

Options:
  --domain D          the accepted domain (default: the host name without its first label)
  --hostname H        this gateway's fqdn (default: the machine's host name)
  --data-dir PATH     dataDir (default: ./var beside gateway.yaml; /var/lib/mailgw for a service)
  --force             overwrite existing files
`,
  directory: `Usage: mailgw directory test [--user LOGIN [--password-stdin]] [--address ADDR]

Bind to the directory (gateway.yaml directory) as mailgw does and show what mailgw sees: for a
user its DN, addresses (Send As), groups (nested), the objects it may send on behalf of and its
rights per connector that offers AUTH, and with --password-stdin whether that password binds;
for an address whether some directory object holds it (RCPT 250 or 550 5.1.1), its limits and
delivery restrictions, and who may send on its behalf. Every failure is explained (TLS, bind,
filter, no such entry). Exits 1 when something failed.

Options:
${PATHS}
  --user LOGIN        a login as a client would give it (UPN, DOMAIN\\name, uid, …)
  --password-stdin    read that user's password on stdin and try a bind with it
  --address ADDR      look this address up as RCPT would
`,
  dkim: `Usage: mailgw dkim keygen <domain> [--selector S] [--algorithm rsa|ed25519] [--config FILE]
       mailgw dkim check <domain> [--selector S] [--config FILE]

keygen writes a new private key to <dataDir>/dkim/<domain>/<selector>.key (or the selector's
keyFile in gateway.yaml) with mode 0600, never over an existing one, and prints the TXT record
to publish. Default selector s<YYYYMM>, default algorithm rsa (2048 bits).
check looks up <selector>._domainkey.<domain> for each selector gateway.yaml's dkim lists for the
domain (or the one given) through the resolver of gateway.yaml dns.servers, and says whether the
record is the public half of the key. Exits 1 when one does not match.

Options:
${PATHS}
  --selector S        the selector (keygen: default s<YYYYMM>; check: default those configured)
  --algorithm A       rsa (default) or ed25519
`,
  'tls-report': `Usage: mailgw tls-report [--date YYYY-MM-DD] [--domain D] [--send] [--config FILE]

The SMTP TLS reports (RFC 8460) of one UTC day, from the sessions the workers counted in Redis
per policy domain where MTA-STS or DANE applied (gateway.yaml tlsReports must be set): the
recipient domain under MTA-STS, the MX host (the TLSA base domain) under DANE.
Prints the JSON (one report with --domain, else a list). --send delivers them now as the daily
run does (to the rua of _smtp._tls.<domain>, and to tlsReports.directory), without marking the
day as sent: the daily run still sends it. Exits 1 when a delivery failed.

Options:
${PATHS}
  --date YYYY-MM-DD   the UTC day (default: yesterday, the day the daily run reports)
  --domain D          only this policy domain (a recipient domain, or an MX host for DANE)
  --send              send instead of printing
`,
  'agent-log': `Usage: mailgw agent-log [--agent A] [--action A] [--ip IP|RANGE] [--sender S] [--recipient R]
                        [--reason R] [--since 1d] [--json] [--top ips|senders|recipients|reasons|agents] [--limit N] [--local] [--follow]

The anti-spam agent log (Exchange's Get-AgentLog): what connection filtering, the sender and
recipient filters, sender authentication (Sender Id), the content filters, the Edge rules and
sender reputation (Protocol Analysis) did, one line each: time, client, agent, action, reason,
sender, recipients, the reply, and why. Read from every machine's copy in Redis (daily streams,
logs.agentLogStreamMaxLength) and this machine's files (<dataDir>/logs/agent).

Options:
${PATHS}
  --agent A           agents whose name contains A (connection, sender filter, recipient, sender id,
                      content, edge rule, attachment, protocol analysis, milter)
  --action A          RejectCommand, RejectMessage, TempRejectMessage, DeleteMessage,
                      QuarantineMessage, AcceptMessage, BlockSender, FilterFailed
  --ip IP|RANGE       clients in this address or range
  --sender S          MAIL FROM
  --recipient R       one of the recipients
  --reason R          reason codes containing R (e.g. scl-9, sender-reputation-blocked, user-unknown)
  --since WHEN        a duration back (30m, 1h, 2d) or a date (default 1d)
  --top WHAT          count instead of list: the top ips, senders, recipients, reasons or agents
  --limit N           the latest N lines (default all), or the top N (default 10)
  --json              as JSON
  --local             this machine's files only
  --follow, -f        print the matching lines of every machine as they come (Ctrl-C ends);
                      with --since, those from then on first
`,
  'ip-block-list': `Usage: mailgw ip-block-list [list [--json] | add <ip|range> [--for 24h] [--comment TEXT] | remove <ip|range>]

The IP Block List in the queue's Redis (Exchange Get-, Add- and Remove-IPBlockListEntry):
sender reputation's entries and the admins'. Every listener of the gateway reads it within a
second and refuses a listed client 550 5.7.1 at RCPT (ipBlockListConfig.bypassedRecipients still
reachable; the IP Allow List and ms-Exch-Bypass-Anti-Spam sessions are never refused).

Options:
${PATHS}
  --for DURATION      add: how long (24h, 7d); default until removed
  --comment TEXT      add: why, shown by list
  --json              list: as JSON
`,
  reputation: `Usage: mailgw reputation <ip> [--json | --reset]

A sender's reputation profile (senderReputationConfig): its messages, spam, recipients (known
and unknown), HELOs and reverse DNS, the sender reputation level (SRL) they give with each part,
and its IP Block List entry. An IPv6 address is rated with its /64.

Options:
${PATHS}
  --json              as JSON
  --reset             forget the profile: the sender is rated afresh from its next message
`,
  'recipient-limit': `Usage: mailgw recipient-limit <user | DN> [--reset] [--json]

throttlingPolicy.recipientRateLimit by hand: the recipients a user addressed in the last 24
hours (the counter every listener shares in Redis), its limit, and until when RCPT gets
550 5.1.90 when it is reached. A local user by name; a directory user by its DN (it is counted by
DN whatever login form it uses).

Options:
${PATHS}
  --reset             clear the counter: the user may address its full limit again at once
  --json              as JSON
`,
  'verify-recipient': `Usage: mailgw verify-recipient <address> [--from SENDER] [--cached | --forget] [--json]

Recipient verification (gateway.yaml recipientVerification) by hand: shows the answer the
listeners share in Redis, asks the address's next hop now as a listener would (MAIL FROM, RCPT
TO, no DATA, through the route or send connector delivery uses) and keeps its answer, and says
what RCPT would be answered. Exits 1 when the next hop could not be asked or could not say.

Options:
${PATHS}
  --from SENDER       choose the send connector as for mail from SENDER (default: the null sender)
  --cached            only show the cached answer; do not ask the next hop
  --forget            forget the cached answer (a mailbox created or deleted just now)
  --json              as JSON
`,
  sendmail: `Usage: mailgw sendmail [-t] [-i] [-f SENDER] [-F "FULL NAME"] [-C gateway.yaml] [RECIPIENT …] < message
       mailgw sendmail -bs | -bp | -bi | -q [-C gateway.yaml]

The sendmail command line (Postfix's sendmail(1), the common options): the message on standard
input goes into the pickup directory (gateway.yaml pickupDirectoryPath), and the gateway sends
it from there. Link it as /usr/sbin/sendmail for cron, logwatch, PHP's mail() and mail(1).

Options:
  -t                  recipients from To, Cc and Bcc too (Resent-* for a resent message)
  -i, -oi             a line of a single dot does not end the message
  -f SENDER, -r SENDER
                      the envelope sender (default: your login name at the default accepted domain)
  -F "FULL NAME"      the sender's name in the From field added when the message has none
  -C FILE, --config FILE
                      gateway.yaml (default: $MAILGW_CONFIG, /etc/mailgw/gateway.yaml, ./gateway.yaml)
  -N never|success,failure,delay   DSN NOTIFY for every recipient
  -R full|hdrs, -V ENVID            DSN RET and envelope id
  Recipients without @ get the default accepted domain. -B, -L, -o…, -odi, -oem, -v and the
  like are accepted and ignored. Exit codes are sendmail's: 0 handed over, 64 usage,
  73 the pickup directory cannot be written, 75 try again, 78 configuration.

Modes (Postfix's):
  -bs                 SMTP on standard input and output (PHP mailers' "sendmail -bs"): each
                      message goes into the pickup directory; 250 once it is on disk
  -bp                 the queue in Postfix's mailq format (linked as "mailq", the same);
                      69 when the queue's Redis cannot be reached
  -bi, -I             nothing to do: mailgw keeps no aliases database (linked as "newaliases")
  -q                  try every queued message now (postqueue -f)
`,
  'hash-password': `Usage: mailgw hash-password < password

Read a password on stdin and print a hash for gateway.yaml users.
`,
  start: `Usage: mailgw start [--config FILE] [--connectors DIR]

Run the listeners and delivery workers: by default one listener process per core, sharing
every binding, and delivery worker processes, supervised by this one (gateway.yaml
\`processes\`). Without REDIS_URL or redis.url, mailgw runs its own redis-server in
<dataDir>/redis (one per dataDir). Reloads the configuration when it changes
or on SIGHUP; stops on SIGTERM or SIGINT.

Options:
${PATHS}
`,
  listen: `Usage: mailgw listen [--config FILE] [--connectors DIR]

Run the listeners only (delivery is left to \`mailgw worker\` processes).

Options:
${PATHS}
`,
  worker: `Usage: mailgw worker [--config FILE] [--connectors DIR] [--concurrency N] [--http IP:PORT]

Run a delivery worker against REDIS_URL or redis.url (start many, on many machines).

Options:
${PATHS}
  --concurrency N     messages delivered at once (default: queue.workerConcurrency)
  --http IP:PORT      serve this worker's /metrics and /healthz there (default: gateway.yaml http)
`,
  quarantine: `Usage: mailgw quarantine release [--to ADDRESS]… [--from ADDRESS] [--dry-run] [--config FILE] FILE…

Send a message held in quarantine on to the recipients it was meant for (Exchange's
Release-QuarantineMessage). FILE is the message as saved from the quarantine mailbox (the
maildir file, or an .eml from a mail client; - for standard input): its original recipients and
sender are the X-Mailgw-Quarantine-Recipients and -Sender fields mailgw stamped on it (Return-Path
for the sender when there is no such field). Those stamps, X-MS-Exchange-Organization-Quarantine
and the delivery fields on top (Return-Path, Delivered-To, X-Original-To) are removed, and the
message goes into the pickup directory: sent as the gateway's own mail, transport and journal
rules apply, the anti-spam filters do not judge it again.

Options:
  --to ADDRESS        only to this original recipient (repeat for several); never anyone else
  --from ADDRESS      the envelope sender, when the message does not say it ('' for <>)
  --dry-run           print who it would go to; write nothing
${PATHS}
Exit codes: 0 every file released, 65 a file that is not a message mailgw quarantined (or
--to names someone else), 66 a file that cannot be read, 73/75 the pickup directory cannot be
written, 78 configuration.
`,
  queue: `Usage: mailgw queue <subcommand> [--config FILE] [--connectors DIR]

${QUEUE_USAGE}
Options:
${PATHS}
  --json              machine-readable output (list, status, show, messages, retry and the bulk actions)
  -v, --verbose       retry and bulk actions: list each message done and skipped
  --limit N           messages: lines shown (default 1000)
  --after ID          messages: the page after this queue id (the last one of the previous page)
  -y, --yes           bulk actions: no confirmation
  --reset-state       resubmit: a message whose delivery state cannot be read starts over
`,
  track: `Usage: mailgw track (--message-id ID | --sender ADDR | --recipient ADDR | --queue-id ID) [options]
       mailgw track --summary [--since 1d|DATE] [--top N] [--json] [--local]

Search the message tracking log: the copy in Redis, with the events of every listener and
worker process on every machine, and this machine's files (dataDir/logs/tracking).
--summary: the mail traffic of the period in one page, as pflogsumm gives it for Postfix:
received, delivered, deferred, failed, DSNs, what the anti-spam agents refused (the agent log),
per hour (per day beyond two days), the top senders, recipients, domains and reasons.

Options:
${PATHS}
  --message-id ID     the Message-ID header
  --sender ADDR       the envelope sender
  --recipient ADDR    an envelope recipient
  --queue-id ID       mailgw's queue id
  --since 1h|DATE     only events after this (--summary: default 1d)
  --summary           the traffic summary of the period instead of the events
  --top N             --summary: the length of its top lists (default 10)
  --json              the events as JSON (--summary: the summary)
  --local             this machine's files only (not Redis)
`,
};

export const USAGE = `Usage: mailgw <command> [options]

Commands:
  init           write a commented gateway.yaml and connectors.d/ for your domain
  check          validate gateway.yaml and connectors.d/, show each connector's rights
  explain        show what the gateway would answer a client at each SMTP stage, and why
  hash-password  read a password on stdin, print a hash for gateway.yaml users
  sendmail       the sendmail command line: hand a message on stdin to the pickup directory
  dkim           make DKIM keys (keygen) and check their published DNS records (check)
  start          run listeners and delivery workers (embedded redis-server unless REDIS_URL)
  listen         run the listeners only
  worker         run a delivery worker (REDIS_URL or redis.url; start many, on many machines)
  queue          list, show, retry, suspend, resume, remove and export queued mail
  quarantine     release a quarantined message to its original recipients
  track          search the message tracking log
  agent-log      what the anti-spam agents did (Exchange's Get-AgentLog), or the top blocked IPs, senders, reasons
  ip-block-list  list, add and remove IP Block List entries (every listener refuses them at RCPT)
  reputation     show a sender's reputation profile and level (SRL)
  verify-recipient  ask a recipient's next hop whether it takes the address (recipientVerification)
  recipient-limit   a user's recipients in the last 24 hours against recipientRateLimit, or --reset
  tls-report     print or send the daily SMTP TLS reports (RFC 8460) of MTA-STS/DANE sessions
  directory      test the directory (AD/LDAP): what mailgw sees for a user or an address

  mailgw <command> --help   that command's options
  mailgw --version          the version

Common options:
${PATHS}
`;

/** The version in @mailgw/cli's package.json (the same from src/ and dist/). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/** `--help` or `-h` among the arguments (before a `--` that ends the options). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}
