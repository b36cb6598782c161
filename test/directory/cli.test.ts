// The directory in the admin's commands, run as the real binary against a real slapd:
// `mailgw check` shows the directory part and the group grants, `mailgw explain --auth` shows
// which group gave which right and what the directory answered for each RCPT, and
// `mailgw directory test` shows a user's DN, addresses, groups and rights, checks a password,
// looks an address up, and explains an outage in words.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mailgw, root } from '../cli/helpers/binary.js';
import { BASE_DN, DOMAIN_SID, FIXTURE_PASSWORD, SERVICE_DN, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';

const skip = slapdSkip();
let ldap: TestSlapd;
let dir: string;
const args = () => ['--config', path.join(dir, 'gateway.yaml'), '--connectors', path.join(dir, 'connectors.d')];

before(async () => {
  if (skip) return;
  ldap = (await startSlapd())!;
  dir = mkdtempSync(path.join(tmpdir(), 'mailgw-dir-cli-'));
  mkdirSync(path.join(dir, 'connectors.d'));
  writeFileSync(path.join(dir, 'ldap-password.txt'), `${FIXTURE_PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(
    path.join(dir, 'gateway.yaml'),
    [
      'fqdn: mx.contoso.test',
      'acceptedDomains: [{ domain: contoso.test, default: true }]',
      'recipients: { directory: true }',
      'senderAuthentication: { enabled: false }  # no real DNS in tests',
      'directory:',
      `  url: [${ldap.url}]`,
      `  bindDn: "${SERVICE_DN}"`,
      '  bindPasswordFile: ldap-password.txt',
      `  baseDn: "${BASE_DN}"`,
      '  preset: activeDirectory',
      '  userFilter: (objectClass=mailgwTestADUser)',
      '  timeout: 2s',
      '',
    ].join('\n'),
  );
  writeFileSync(
    path.join(dir, 'connectors.d', 'people.yaml'),
    [
      'name: People',
      "bindings: ['127.0.0.1:2587']",
      'authMechanism: [Tls, BasicAuth, BasicAuthRequireTLS]',
      'permissionGroups: [None]',
      'permissions:',
      '  - { user: AuthenticatedUsers, extendedRights: [ms-Exch-SMTP-Submit] }',
      "  - { group: 'Relay Users', extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient] }",
      `  - { group: 'cn=Deny Relay,ou=Groups,${BASE_DN}', extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient], deny: true }`,
      "  - { group: 'Domain Users', extendedRights: [ms-Exch-SMTP-Accept-Any-Recipient] }",
      '',
    ].join('\n'),
  );
});
after(async () => {
  await ldap?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('mailgw check, explain and directory test', { skip }, () => {
  it('check shows the directory and what a group member gets', () => {
    const r = mailgw(['check', ...args()]);
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.out, new RegExp(`Directory: activeDirectory at ${ldap.url.replace(/[.]/g, '\\.')}, base ${BASE_DN}`));
    assert.match(r.out, /logon by userPrincipalName or sAMAccountName .*disabled accounts \(userAccountControl bit 2\) refused; local users first/);
    assert.match(r.out, /recipient lookup on \(cached 5m.*timeout 2s per server; connections kept per process \(lookups; password checks\), closed after 1m idle/);
    assert.match(r.out, /recipients with msExchRequireAuthToSendTo TRUE take mail only from authenticated senders \(users after AUTH, externally secured connectors\): 550 5\.7\.1 RESOLVER\.RST\.AuthRequired to others/);
    assert.match(r.out, /group Relay Users \(member, after AUTH\)\s+Submit, AnyRecipient\(relay\)/);
    const j = mailgw(['check', ...args(), '--json']);
    const d = (JSON.parse(j.out) as { directory: Record<string, unknown> }).directory;
    assert.equal(d.preset, 'activeDirectory');
    assert.deepEqual(d.loginAttributes, ['userPrincipalName', 'sAMAccountName']);
    assert.equal(d.recipientLookup, true);
    assert.equal(d.requireSenderAuthenticationAttribute, 'msExchRequireAuthToSendTo');
    assert.ok(!j.out.includes(FIXTURE_PASSWORD), 'the password is never printed');
  });

  it('explain --auth: which group gave which right, and the directory answer for each RCPT', () => {
    const r = mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--tls', '--auth', 'alice@contoso.test', '--mail-from', 'a.smith@contoso.test', '--rcpt', 'partner@fabrikam.example', '--rcpt', 'nobody@contoso.test', '--rcpt', 'partner-list@contoso.test']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /authenticated by the directory as cn=Alice Smith,ou=People,dc=contoso,dc=test; groups: Helpdesk, Domain Users, Relay Users, All Staff/);
    assert.match(r.out, /\n\s+Domain Users: primary group \(primaryGroupID 513, objectSid S-1-5-21-[\d-]+-513\)\n\s+Relay Users: memberOf of Helpdesk\n/);
    // Both of alice's groups that are granted relay are named: Domain Users (her primary group) and Relay Users (nested).
    assert.match(r.out, /ms-Exch-SMTP-Accept-Any-Recipient\s+from permissions\[3\] \(grant to group Domain Users\) → group:domain users; permissions\[1\] \(grant to group Relay Users\) → group:relay users/);
    assert.match(r.out, /MAIL <a\.smith@contoso\.test>\n\s+accept\s+250 2\.1\.0 Sender OK\n\s+why\s+a\.smith@contoso\.test is one of user alice@contoso\.test's addresses/);
    assert.match(r.out, /RCPT <nobody@contoso\.test>\n\s+reject\s+550 5\.1\.1 User unknown\n\s+why\s+no directory object holds nobody@contoso\.test/);
    assert.match(r.out, /RCPT <partner-list@contoso\.test>\n\s+accept\s+250 2\.1\.5 Recipient OK/);
    // carol is in Deny Relay: the deny shows where it came from.
    const c = mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--tls', '--auth', 'carol', '--mail-from', 'carol@contoso.test', '--rcpt', 'partner@fabrikam.example']);
    assert.match(c.out, /550 5\.7\.1 Unable to relay\n\s+why\s+.*denied by permissions\[2\] \(deny to group cn=Deny Relay/);
  });

  it('directory test --user --password-stdin: DN, addresses, groups, rights per connector, password accepted or refused', () => {
    const ok = mailgw(['directory', 'test', ...args(), '--user', 'CONTOSO\\alice', '--password-stdin'], `${FIXTURE_PASSWORD}\n`);
    assert.equal(ok.code, 0, ok.out + ok.err);
    assert.match(ok.out, /DN\s+cn=Alice Smith,ou=People,dc=contoso,dc=test/);
    assert.match(ok.out, /addresses alice@contoso\.test, a\.smith@contoso\.test/);
    assert.match(ok.out, /groups\s+cn=Helpdesk,ou=Groups,dc=contoso,dc=test; cn=Domain Users,ou=Groups,dc=contoso,dc=test; cn=Relay Users,ou=Groups,dc=contoso,dc=test; cn=All Staff,ou=Groups,dc=contoso,dc=test\n/);
    assert.match(ok.out, /\n\s+Helpdesk: memberOf of the user\n/);
    assert.match(ok.out, /connector "People": ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient/);
    assert.match(ok.out, /password: accepted/);
    const bad = mailgw(['directory', 'test', ...args(), '--user', 'alice', '--password-stdin'], 'wrong\n');
    assert.equal(bad.code, 1);
    assert.match(bad.out, /password: refused \(AUTH would answer 535 5\.7\.3\): wrong password/);
    const dave = mailgw(['directory', 'test', ...args(), '--user', 'dave']);
    assert.equal(dave.code, 1);
    assert.match(dave.out, /DISABLED: userAccountControl bit 2/);
  });

  it('directory test: the primary group (Domain Users) with its SID and the right it gives; no objectSid / no such group in a trace line', () => {
    const erin = mailgw(['directory', 'test', ...args(), '--user', 'erin']);
    assert.equal(erin.code, 0, erin.out + erin.err);
    assert.match(erin.out, /groups\s+cn=Domain Users,ou=Groups,dc=contoso,dc=test; cn=All Staff,ou=Groups,dc=contoso,dc=test\n/);
    assert.ok(erin.out.includes(`Domain Users: primary group (primaryGroupID 513, objectSid ${DOMAIN_SID}-513)`), erin.out);
    assert.match(erin.out, /All Staff: memberOf of Domain Users/);
    assert.match(erin.out, /connector "People": ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient\n.*\n\s+ms-Exch-SMTP-Accept-Any-Recipient from permissions\[3\] \(grant to group Domain Users\)/);
    const frank = mailgw(['directory', 'test', ...args(), '--user', 'frank']);
    assert.equal(frank.code, 0, frank.out + frank.err);
    assert.ok(frank.out.includes(`(${DOMAIN_SID}-1199, primaryGroupID 1199): no object has this SID; primary group ignored`), frank.out);
    assert.match(frank.out, /groups\s+\(none\)/);
    const gina = mailgw(['directory', 'test', ...args(), '--user', 'gina']);
    assert.equal(gina.code, 0, gina.out + gina.err);
    assert.match(gina.out, /primary group of cn=Gina NoSid,ou=People,dc=contoso,dc=test: not looked up: the entry has primaryGroupID 513 but no objectSid/);
  });

  it('directory test --address: found / not found, as RCPT would answer', () => {
    const found = mailgw(['directory', 'test', ...args(), '--address', 'a.smith@contoso.test']);
    assert.equal(found.code, 0);
    assert.match(found.out, /found: RCPT would be answered 250 2\.1\.5/);
    const missing = mailgw(['directory', 'test', ...args(), '--address', 'nobody@contoso.test']);
    assert.match(missing.out, /not found: RCPT would be answered 550 5\.1\.1 User unknown/);
    const restricted = mailgw(['directory', 'test', ...args(), '--address', 'allstaff@contoso.test']);
    assert.equal(restricted.code, 0);
    assert.match(restricted.out, /found cn=All Staff,ou=Groups,dc=contoso,dc=test, msExchRequireAuthToSendTo TRUE/);
    assert.match(restricted.out, /found, for authenticated senders only \(msExchRequireAuthToSendTo TRUE\): RCPT would be answered 250 2\.1\.5 after AUTH or on an externally secured connector, 550 5\.7\.1 RESOLVER\.RST\.AuthRequired to an anonymous session/);
    // explain asks the directory the same way: after AUTH the restricted group is accepted, and says why.
    const e = mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--tls', '--auth', 'alice@contoso.test', '--mail-from', 'alice@contoso.test', '--rcpt', 'allstaff@contoso.test']);
    assert.equal(e.code, 0, e.err);
    assert.match(e.out, /RCPT <allstaff@contoso\.test>\n\s+accept\s+250 2\.1\.5 Recipient OK\n\s+why\s+allstaff@contoso\.test is held by a directory object .*it takes mail only from authenticated senders, and this one is \(user alice@contoso\.test\)/);
  });

  it('delivery restrictions and size limits: check says what is read, directory test --address lists them, explain judges the sender by its groups and SIZE= by the limit', () => {
    const c = mailgw(['check', ...args()]);
    assert.match(c.out, /delivery restrictions read: acceptMessagesOnlyFrom from authOrig, acceptMessagesOnlyFromDLMembers from dLMemSubmitPerms, rejectMessagesFrom from unauthOrig, rejectMessagesFromDLMembers from dLMemRejectPerms; a sender \(MAIL FROM, with its groups\) outside them gets 550 5\.7\.1 RESOLVER\.RST\.NotAuthorized/);
    const board = mailgw(['directory', 'test', ...args(), '--address', 'board@contoso.test']);
    assert.equal(board.code, 0, board.err);
    assert.match(board.out, /found cn=Board,ou=Groups,dc=contoso,dc=test, delivery restrictions authOrig \(acceptMessagesOnlyFrom\): cn=Alice Smith,ou=People,dc=contoso,dc=test; cn=Partner List,ou=Contacts,dc=contoso,dc=test, dLMemSubmitPerms \(acceptMessagesOnlyFromDLMembers\): cn=Sales,ou=Groups,dc=contoso,dc=test/);
    assert.match(board.out, /delivery restrictions \(a sender outside them gets 550 5\.7\.1 RESOLVER\.RST\.NotAuthorized at RCPT; a reject list wins\):\n\s+acceptMessagesOnlyFrom \(authOrig\): Alice Smith, Partner List\n\s+acceptMessagesOnlyFromDLMembers \(dLMemSubmitPerms\): Sales\n/);
    const plain = mailgw(['directory', 'test', ...args(), '--address', 'alice@contoso.test']);
    assert.doesNotMatch(plain.out, /delivery restrictions|largest message/);
    // The recipient's own size limit (delivContLength).
    assert.match(c.out, /recipients' own size limits read from delivContLength \(KB\): a larger declared SIZE= gets 552 5\.2\.3 RESOLVER\.RST\.RecipSizeLimit at RCPT/);
    assert.match(c.out, /users' own send size limits read from submissionContLength \(KB\): after AUTH a larger message gets 552 5\.2\.3 RESOLVER\.RST\.SendSizeLimit\.Sender/);
    const henry = mailgw(['directory', 'test', ...args(), '--user', 'henry']);
    assert.match(henry.out, /largest message it may send: 10 KB \(submissionContLength\)/);
    assert.match(henry.out, /most recipients per message: 2 \(msExchRecipLimit\): after AUTH the RCPT past it gets 452 4\.5\.3 Too many recipients/);
    assert.match(c.out, /users' own recipient limits read from msExchRecipLimit/);
    const ivy = mailgw(['directory', 'test', ...args(), '--address', 'ivy@contoso.test']);
    assert.match(ivy.out, /found cn=Ivy Small,ou=People,dc=contoso,dc=test, delivContLength 10 KB \(largest message it takes\)/);
    assert.match(ivy.out, /largest message it takes: 10 KB \(delivContLength\): a larger SIZE= gets 552 5\.2\.3 RESOLVER\.RST\.RecipSizeLimit at RCPT/);
    const sized = mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--tls', '--auth', 'alice@contoso.test', '--mail-from', 'alice@contoso.test', '--size', '20000', '--rcpt', 'ivy@contoso.test']);
    assert.match(sized.out, /RCPT <ivy@contoso\.test>\n\s+reject\s+552 5\.2\.3 RESOLVER\.RST\.RecipSizeLimit; message too large for this recipient\n\s+why\s+SIZE=20000 exceeds the 10240-byte limit of ivy@contoso\.test/);
    // Without SIZE=: a 15,000-byte message to ivy (10 KB) and alice (no limit) is accepted, and failed for ivy; to ivy alone it is refused at the end of DATA.
    const scenario = (rcpt: string[]) => {
      const file = path.join(dir, `scenario-${rcpt.length}.json`);
      writeFileSync(file, JSON.stringify({ binding: '127.0.0.1:2587', clientIP: '127.0.0.1', tls: true, auth: 'alice@contoso.test', mailFrom: 'alice@contoso.test', rcpt, data: { messageBytes: 15_000 } }));
      return mailgw(['explain', ...args(), '--scenario', file]);
    };
    const mixed = scenario(['ivy@contoso.test', 'alice@contoso.test']);
    assert.equal(mixed.code, 0, mixed.err);
    assert.match(mixed.out, /message of 15000 bytes exceeds the 10240-byte limit of ivy@contoso\.test \(its directory object's MaxReceiveSize\): accepted, and failed for ivy@contoso\.test from the start \(552 5\.2\.3 RESOLVER\.RST\.RecipSizeLimit; message too large for this recipient, in a DSN\)/);
    // The same from the command line.
    const flagged = mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--tls', '--auth', 'alice@contoso.test', '--mail-from', 'alice@contoso.test', '--rcpt', 'ivy@contoso.test', '--rcpt', 'alice@contoso.test', '--message-size', '15000']);
    assert.match(flagged.out, /accepted, and failed for ivy@contoso\.test from the start/);
    assert.equal(mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--message-size', 'big']).code, 2);
    const alone = scenario(['ivy@contoso.test']);
    assert.match(alone.out, /reject\s+552 5\.2\.3 RESOLVER\.RST\.RecipSizeLimit; message too large for this recipient\n\s+why\s+message of 15000 bytes \(so far\) exceeds the limit of every recipient/);
    const explain = (login: string, from: string) => mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--tls', '--auth', login, '--mail-from', from, '--rcpt', 'board@contoso.test', '--rcpt', 'henry@contoso.test']);
    const carol = explain('carol', 'carol@contoso.test');
    assert.equal(carol.code, 0, carol.err);
    assert.match(carol.out, /RCPT <board@contoso\.test>\n\s+accept\s+250 2\.1\.5 Recipient OK\n\s+why\s+.*delivery restrictions: carol@contoso\.test \(cn=Carol White,ou=People,dc=contoso,dc=test\) is a member of Sales, in its AcceptMessagesOnlyFromDLMembers/);
    assert.match(carol.out, /RCPT <henry@contoso\.test>\n\s+reject\s+550 5\.7\.1 RESOLVER\.RST\.NotAuthorized; not authorized\n\s+why\s+henry@contoso\.test does not take mail from this sender .*carol@contoso\.test .* is a member of Deny Relay, in its RejectMessagesFromDLMembers/);
    const alice = explain('alice@contoso.test', 'alice@contoso.test');
    assert.match(alice.out, /RCPT <board@contoso\.test>\n\s+accept\s+250 2\.1\.5/);
    assert.match(alice.out, /RCPT <henry@contoso\.test>\n\s+accept\s+250 2\.1\.5/);
  });

  it('Send As: check says it is read, directory test --user counts the SIDs, explain judges MAIL FROM by the object\'s DACL', () => {
    const c = mailgw(['check', ...args()]);
    assert.match(c.out, /Send As from the directory: a user's MAIL FROM of another object's address is allowed where that object's DACL \(nTSecurityDescriptor\) grants/);
    const alice = mailgw(['directory', 'test', ...args(), '--user', 'alice@contoso.test']);
    assert.match(alice.out, /SIDs for Send As: 6 \(objectSid, tokenGroups, Everyone, Authenticated Users\)/);
    const gina = mailgw(['directory', 'test', ...args(), '--user', 'gina']);
    assert.match(gina.out, /SIDs for Send As: none read \(no objectSid or tokenGroups\)/);
    const explain = (login: string) => mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--tls', '--auth', login, '--mail-from', 'info@contoso.test', '--rcpt', 'partner@fabrikam.example']);
    const granted = explain('alice@contoso.test');
    assert.equal(granted.code, 0, granted.err);
    assert.match(granted.out, /MAIL <info@contoso\.test>\n\s+accept\s+250 2\.1\.0 Sender OK\n\s+why\s+info@contoso\.test is held by cn=Info Desk,ou=People,dc=contoso,dc=test, on which directory user alice@contoso\.test has Send As/);
    const denied = explain('carol');
    assert.match(denied.out, /MAIL <info@contoso\.test>\n\s+reject\s+550 5\.7\.1 Client does not have permissions to send as this sender\n\s+why\s+.*Send As: cn=Info Desk,ou=People,dc=contoso,dc=test: Send As is denied to S-1-5-21-3623811015-3361044348-30300820-1105/);
  });

  it('explain --header: the header From and Sender judged as the listener judges them (Send As, Send on Behalf); check says Send on Behalf is read', () => {
    assert.match(mailgw(['check', ...args()]).out, /Send on Behalf from publicDelegates: a header From: the user may not send as passes when Sender: is the user's/);
    // directory test --user says on whose behalf the user may send (its own DN or a group's listed).
    assert.match(mailgw(['directory', 'test', ...args(), '--user', 'alice@contoso.test']).out, /\n {2}Send on Behalf \(publicDelegates\) of: Henry Ford <henry@contoso\.test> \(From: that address, Sender: the user's own\)\n/);
    assert.match(mailgw(['directory', 'test', ...args(), '--user', 'carol']).out, /\n {2}Send on Behalf \(publicDelegates\) of: Board <board@contoso\.test> /);
    assert.match(mailgw(['directory', 'test', ...args(), '--user', 'erin']).out, /\n {2}Send on Behalf \(publicDelegates\): of no object\n/);
    // directory test --address says who may send on the object's behalf.
    assert.match(mailgw(['directory', 'test', ...args(), '--address', 'board@contoso.test']).out, /\n {2}Send on Behalf \(publicDelegates\): Sales may send as From: <board@contoso\.test> with Sender: their own address/);
    assert.match(mailgw(['directory', 'test', ...args(), '--address', 'henry@contoso.test']).out, /\n {2}Send on Behalf \(publicDelegates\): Alice Smith may send/);
    assert.match(mailgw(['directory', 'test', ...args(), '--address', 'info@contoso.test']).out, /\n {2}Send on Behalf \(publicDelegates\): nobody\n/);
    const explain = (login: string, ...headers: string[]) => mailgw(['explain', ...args(), '--binding', '127.0.0.1:2587', '--client-ip', '127.0.0.1', '--tls', '--auth', login, '--mail-from', `${login.split('@')[0]}@contoso.test`, '--rcpt', 'partner@fabrikam.example', ...headers.flatMap((h) => ['--header', h])]);
    const onBehalf = explain('alice@contoso.test', 'From: Henry Ford <henry@contoso.test>', 'Sender: alice@contoso.test');
    assert.equal(onBehalf.code, 0, onBehalf.err);
    assert.match(
      onBehalf.out,
      /MESSAGE .*; header From henry@contoso\.test, Sender alice@contoso\.test\n\s+accept\s+250 2\.6\.0 .*\n\s+why\s+.*user alice@contoso\.test may send as the header's Sender alice@contoso\.test: own-address, From henry@contoso\.test: send-on-behalf \(header From henry@contoso\.test: sent on behalf of cn=Henry Ford,ou=People,dc=contoso,dc=test by alice@contoso\.test \(Sender alice@contoso\.test\): its GrantSendOnBehalfTo lists cn=Alice Smith,ou=People,dc=contoso,dc=test\)/,
    );
    assert.match(explain('alice@contoso.test', 'From: info@contoso.test').out, /why\s+.*user alice@contoso\.test may send as the header's From info@contoso\.test: send-as-right \(header From: info@contoso\.test is held by cn=Info Desk,ou=People,dc=contoso,dc=test/);
    const refused = explain('erin', 'From: henry@contoso.test', 'Sender: erin@contoso.test');
    assert.match(refused.out, /MESSAGE .*\n\s+reject\s+550 5\.7\.60 SMTP; Client does not have permissions to send as this sender\n\s+why\s+header From henry@contoso\.test: .*; Send on Behalf: cn=Henry Ford,ou=People,dc=contoso,dc=test: its GrantSendOnBehalfTo \(1\) lists neither the user nor a group it is in \[header-sender-not-permitted\]/);
  });

  it('directory test --address: with a disclaimer that has tokens, the values this sender would get', () => {
    const sig = path.join(dir, 'gateway-signature.yaml');
    writeFileSync(sig, `${readFileSync(path.join(dir, 'gateway.yaml'), 'utf8')}transportRules:\n  - { name: Signature, applyHtmlDisclaimerText: "<p>%%DisplayName%%, %%Title%%, %%Manager%%, %%CustomAttribute2%%</p>" }\n`);
    const sigArgs = ['--config', sig, '--connectors', path.join(dir, 'connectors.d')];
    const r = mailgw(['directory', 'test', ...sigArgs, '--address', 'alice@contoso.test']);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /disclaimer tokens as a sender \(cn=Alice Smith,ou=People,dc=contoso,dc=test\):\n\s+%%DisplayName%%\s+Alice Smith\n\s+%%Title%%\s+Head of "R&D" <Labs>\n\s+%%Manager%%\s+Bob Jones\n\s+%%CustomAttribute2%%\s+\(empty\)\n/);
    const group = mailgw(['directory', 'test', ...sigArgs, '--address', 'nobody@contoso.test']);
    assert.doesNotMatch(group.out, /disclaimer tokens/, 'no object: RCPT would refuse it, nothing to show');
    const plain = mailgw(['directory', 'test', ...args(), '--address', 'alice@contoso.test']);
    assert.doesNotMatch(plain.out, /disclaimer tokens/, 'no rule with tokens: not shown');
  });

  it('directory test --address: with transport rules on groups, the groups as the rules see them and which conditions the address meets', () => {
    const g = path.join(dir, 'gateway-groups.yaml');
    writeFileSync(g, `${readFileSync(path.join(dir, 'gateway.yaml'), 'utf8')}transportRules:\n  - { name: Relay footer, fromMemberOf: [Relay Users], exceptIfFromMemberOf: [Deny Relay], prependSubject: x }\n  - { name: Sales mail, sentToMemberOf: [sales@contoso.test], prependSubject: y }\n  - { name: Wall, betweenMemberOf1: [Helpdesk], betweenMemberOf2: [Sales], smtpRejectMessageRejectText: no }\n`);
    const gArgs = ['--config', g, '--connectors', path.join(dir, 'connectors.d')];
    const alice = mailgw(['directory', 'test', ...gArgs, '--address', 'alice@contoso.test']);
    assert.equal(alice.code, 0, alice.out + alice.err);
    assert.match(alice.out, /groups for the transport rules \(nested; \d+\): [^\n]*Helpdesk[^\n]*Relay Users/);
    assert.match(alice.out, /rule "Relay footer" fromMemberOf: met as the sender \(Relay Users\)\n\s+rule "Relay footer" exceptIfFromMemberOf: not met \(Deny Relay\)\n\s+rule "Sales mail" sentToMemberOf: not met \(sales@contoso\.test\)\n/);
    const sales = mailgw(['directory', 'test', ...gArgs, '--address', 'sales@contoso.test']);
    assert.match(sales.out, /rule "Sales mail" sentToMemberOf: met as a recipient \(sales@contoso\.test\)/, 'the group itself');
    const carol = mailgw(['directory', 'test', ...gArgs, '--address', 'carol@contoso.test']);
    assert.match(carol.out, /rule "Relay footer" exceptIfFromMemberOf: met as the sender \(Deny Relay\)/);
    assert.match(alice.out, /rule "Wall" betweenMemberOf1: a member \(Helpdesk\)\n\s+rule "Wall" betweenMemberOf2: not a member \(Sales\)\n/);
    assert.match(carol.out, /rule "Wall" betweenMemberOf1: not a member \(Helpdesk\)\n\s+rule "Wall" betweenMemberOf2: a member \(Sales\)\n/);
  });

  it('directory test --address: with transport rules on directory attributes, the values as the rules see them and which conditions the address meets', () => {
    const g = path.join(dir, 'gateway-attributes.yaml');
    writeFileSync(g, `${readFileSync(path.join(dir, 'gateway.yaml'), 'utf8')}transportRules:\n  - { name: Research, senderADAttributeContainsWords: ["Department:Research,Legal"], exceptIfSenderADAttributeMatchesPatterns: ["Title:^Intern"], prependSubject: x }\n  - { name: Team Bob, recipientADAttributeContainsWords: ["Manager:Bob Jones"], prependSubject: y }\n`);
    const gArgs = ['--config', g, '--connectors', path.join(dir, 'connectors.d')];
    const alice = mailgw(['directory', 'test', ...gArgs, '--address', 'alice@contoso.test']);
    assert.equal(alice.code, 0, alice.out + alice.err);
    assert.match(alice.out, /attributes for the transport rules \(cn=Alice Smith,ou=People,dc=contoso,dc=test\):\n\s+Department \(department\)\s+Research\n\s+Title \(title\)\s+Head of "R&D" <Labs>\n\s+Manager \(manager\)\s+Bob Jones\n/);
    assert.match(alice.out, /rule "Research" senderADAttributeContainsWords: met as the sender\n\s+rule "Research" exceptIfSenderADAttributeMatchesPatterns: not met\n\s+rule "Team Bob" recipientADAttributeContainsWords: met as a recipient\n/);
    const carol = mailgw(['directory', 'test', ...gArgs, '--address', 'carol@contoso.test']);
    assert.match(carol.out, /Department \(department\)\s+\(none\)/);
    assert.match(carol.out, /rule "Research" senderADAttributeContainsWords: not met/);
  });

  it('directory test explains an outage in words', async () => {
    await ldap.stop();
    try {
      const r = mailgw(['directory', 'test', ...args(), '--user', 'alice']);
      assert.equal(r.code, 1);
      assert.match(r.out, /FAILED \(unavailable\): .*ECONNREFUSED[\s\S]*→ the server could not be reached in time/);
    } finally {
      await ldap.start();
    }
  });
});

describe('the README recipe', () => {
  it('"printers by IP, people by AD login, relay for the Relay Users group" passes mailgw check as written', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const recipe = readme.slice(readme.indexOf('### Recipe: printers by IP, people by AD login'));
    const blocks = [...recipe.matchAll(/```yaml\n# ([^\s:]+)[^\n]*\n([\s\S]*?)```/g)].slice(0, 3);
    assert.deepEqual(blocks.map((b) => b[1]), ['gateway.yaml', 'connectors.d/20-printers.yaml', 'connectors.d/30-people.yaml']);
    const d = mkdtempSync(path.join(tmpdir(), 'mailgw-recipe-'));
    try {
      mkdirSync(path.join(d, 'connectors.d'));
      for (const b of blocks) writeFileSync(path.join(d, b[1]!), b[2]!);
      // The CA file the recipe names (any PEM certificate will do for check).
      writeFileSync(path.join(d, 'contoso-root-ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      const r = mailgw(['check', '--config', path.join(d, 'gateway.yaml')], '', { ...process.env, MAILGW_LDAP_PASSWORD: 'x' });
      assert.equal(r.code, 0, r.err + r.out);
      assert.match(r.out, /group Relay Users \(member, after AUTH\)\s+Submit, AnyRecipient\(relay\)/);
      assert.match(r.out, /Connector "Printers"[\s\S]*Anonymous\s+Submit, .*AnyRecipient\(relay\)/);
      assert.match(r.out, /group CN=Contractors,OU=Groups,DC=contoso,DC=com \(member, after AUTH\) Submit\n/, 'the deny removes relay');
      const missing = mailgw(['check', '--config', path.join(d, 'gateway.yaml')], '', { ...process.env, MAILGW_LDAP_PASSWORD: '' });
      assert.match(missing.err, /gateway\.yaml.*directory\.bindPasswordEnv.*MAILGW_LDAP_PASSWORD is not set/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
