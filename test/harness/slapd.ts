/**
 * Test harness: Debian's OpenLDAP `slapd`, a real directory on a free loopback port with a temp
 * dir. slapd.conf (mdb, the memberof overlay unless `startSlapd({ memberof: false })`, an
 * Active-Directory-shaped schema: proxyAddresses, userPrincipalName, sAMAccountName,
 * userAccountControl, objectSid (octet string) and primaryGroupID (integer) with Microsoft's
 * OIDs, plus mailAlternateAddress, and Exchange's msExchRequireAuthToSendTo (Boolean), AD's company and department, and the
 * delivery restriction lists authOrig, dLMemSubmitPerms, unauthOrig, dLMemRejectPerms and the limits
 * delivContLength, submissionContLength and msExchRecipLimit under test OIDs, and publicDelegates) is checked with `slaptest -u`; slapd runs from it (`-f`) in the
 * foreground (`-d 0`) on `ldap://127.0.0.1:PORT/` (StartTLS) and `ldaps://127.0.0.1:PORT2/` with a
 * self-signed certificate made by openssl (caPem), and the fixture tree is loaded with `ldapadd`
 * while it runs (so the memberof overlay fills memberOf, nested groups included).
 *
 *   const ldap = await startSlapd();           // null when slapd/ldapadd are not installed
 *   const bare = await startSlapd({ memberof: false });   // groups only as groupOfNames member lists
 *   after(() => ldap?.stop());
 *   await ldap.stop(); await ldap.start();      // an outage, then back on the same port
 *
 * The fixture (base dc=contoso,dc=test; every password is FIXTURE_PASSWORD; AD SIDs are
 * DOMAIN_SID-<RID>, written as bytes here by hand, independently of the code under test):
 *   ou=People:  alice (AD-shaped: UPN alice@contoso.test, sAMAccountName alice, proxyAddresses
 *               SMTP:alice@contoso.test + smtp:a.smith@contoso.test; displayName, title (with
 *               HTML metacharacters), telephoneNumber, company, department, manager bob), bob (openLDAP-shaped:
 *               uid bob, mail bob@contoso.test, mailAlternateAddress robert@contoso.test), carol (Sales, Deny Relay), dave (AD-shaped,
 *               userAccountControl 514: disabled), "star*user" (a uid with filter
 *               metacharacters), erin (AD-shaped, in no group but her primary group Domain Users),
 *               frank (AD-shaped, primaryGroupID 1199: no group has that RID), gina (AD-shaped,
 *               primaryGroupID 513 but no objectSid), pat (DN
 *               "cn=Temp\, Pat (*)": filter metacharacters in a DN; member of Temps).
 *               alice, carol, dave, erin: primaryGroupID 513 (Domain Users), which no memberOf lists;
 *               alice, carol and erin carry tokenGroups (their group SIDs, as AD computes them;
 *               carol's include Helpdesk's). "Info Desk" (info@contoso.test): a shared mailbox whose
 *               nTSecurityDescriptor grants Helpdesk Send As and denies it carol.
 *   ou=Groups:  "Relay Users" (member: cn=Helpdesk), Helpdesk (member: alice, bob), Sales (carol; address
 *               sales@contoso.test, msExchRequireAuthToSendTo FALSE),
 *               "Deny Relay" (carol), "Domain Users" (RID 513; member: only the service account,
 *               as AD lists no primary members), "All Staff" (member: cn=Domain Users; address
 *               allstaff@contoso.test with msExchRequireAuthToSendTo TRUE: authenticated senders
 *               only), Temps (pat),
 *               "Print Operators" (groupOfUniqueNames; uniqueMember: cn=Helpdesk: the memberof
 *               overlay ignores it, groupMembership groupOfNames finds it)
 *               Delivery restrictions: Board (member henry; board@contoso.test) accepts only from
 *               alice and the Partner List contact (authOrig) and members of Sales
 *               (dLMemSubmitPerms); Project X (member henry; projectx@contoso.test) only from its
 *               own members and those of Relay Users (nested: Helpdesk); henry (henry@contoso.test) refuses bob (unauthOrig) and members of
 *               Deny Relay (dLMemRejectPerms). Size limits (delivContLength, KB): ivy 10, jack 20,
 *               kim 0 (none); henry may send 10 KB (submissionContLength) to 2 recipients a
 *               message (msExchRecipLimit). Send on Behalf (publicDelegates, Exchange's
 *               GrantSendOnBehalfTo): alice may send on behalf of henry, members of Sales on
 *               behalf of Board.
 *   ou=Contacts: a contact with mail partner-list@contoso.test
 * slapd allows unauthenticated binds (a DN with an empty password succeeds), as some real
 * directories do, so a test can show mailgw never sends one.
 *   cn=svc-mailgw,ou=Service: the service account mailgw binds as (SERVICE_DN / FIXTURE_PASSWORD).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findExecutable, findFreePort } from '@mailgw/queue';

export const BASE_DN = 'dc=contoso,dc=test';
export const SERVICE_DN = `cn=svc-mailgw,ou=Service,${BASE_DN}`;
export const FIXTURE_PASSWORD = 'S3cret!pw';
const ROOT_DN = `cn=admin,${BASE_DN}`;
const ROOT_PW = 'root-secret';

export interface TestSlapd {
  /** ldap://127.0.0.1:<port> (StartTLS offered) */
  readonly url: string;
  readonly port: number;
  /** ldaps://127.0.0.1:<port>: TLS from the first byte */
  readonly ldapsUrl: string;
  /** The self-signed certificate (for 127.0.0.1) slapd presents: what caFile would hold. */
  readonly caPem: string;
  /** The running slapd's process id (0 while stopped): benchmarks read its CPU time. */
  readonly pid: number;
  /** Stops slapd (SIGTERM) and waits for the exit; the data stays (start() brings it back). */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Runs ldapmodify as the root DN with `ldif` (changes, deletes). */
  modify(ldif: string): void;
  /** Stops it and removes the temp dir. Idempotent. */
  close(): Promise<void>;
}

export function slapdSkip(): string | false {
  return findExecutable('slapd') && findExecutable('slaptest') && findExecutable('ldapadd')
    ? false
    : 'slapd/ldap-utils are not installed and the bootstrap could not install them (as root: apt-get install -y slapd ldap-utils)';
}

const AD_SCHEMA = `
attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 2.16.840.1.113730.3.1.13 NAME 'mailAlternateAddress' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
attributetype ( 1.2.840.113556.1.4.146 NAME 'objectSid' EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.98 NAME 'primaryGroupID' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.2.1 NAME 'msExchRequireAuthToSendTo' EQUALITY booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.2.2 NAME 'company' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.2.3 NAME 'department' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.2.4 NAME 'authOrig' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.3.6.1.4.1.55555.2.5 NAME 'dLMemSubmitPerms' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.3.6.1.4.1.55555.2.6 NAME 'unauthOrig' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.3.6.1.4.1.55555.2.7 NAME 'dLMemRejectPerms' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.3.6.1.4.1.55555.2.8 NAME 'delivContLength' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.2.9 NAME 'submissionContLength' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.2.10 NAME 'msExchRecipLimit' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.281 NAME 'nTSecurityDescriptor' EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1301 NAME 'tokenGroups' EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
attributetype ( 1.2.840.113556.1.2.221 NAME 'publicDelegates' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
objectclass ( 1.3.6.1.4.1.55555.1.1 NAME 'mailgwTestADUser' AUXILIARY MAY ( proxyAddresses $ userPrincipalName $ sAMAccountName $ userAccountControl $ mailAlternateAddress $ objectSid $ primaryGroupID $ msExchRequireAuthToSendTo $ company $ department $ authOrig $ dLMemSubmitPerms $ unauthOrig $ dLMemRejectPerms $ delivContLength $ submissionContLength $ msExchRecipLimit $ nTSecurityDescriptor $ tokenGroups $ publicDelegates ) )
objectclass ( 1.3.6.1.4.1.55555.1.2 NAME 'mailgwTestADGroup' AUXILIARY MAY ( objectSid $ sAMAccountName $ proxyAddresses $ msExchRequireAuthToSendTo $ authOrig $ dLMemSubmitPerms $ unauthOrig $ dLMemRejectPerms $ delivContLength $ nTSecurityDescriptor $ publicDelegates ) )
`;

function slapdConf(dir: string, memberof: boolean, strict: boolean): string {
  return `
TLSCertificateFile ${path.join(dir, 'cert.pem')}
TLSCertificateKeyFile ${path.join(dir, 'key.pem')}
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include ${path.join(dir, 'ad.schema')}
pidfile ${path.join(dir, 'slapd.pid')}
# As some real directories: a DN with an empty password is an unauthenticated bind that
# succeeds (RFC 4513 5.1.2), so the tests can show mailgw never sends one.
allow bind_anon_dn
${strict ? 'security tls=128' : ''}
modulepath /usr/lib/ldap
moduleload back_mdb
${memberof ? 'moduleload memberof' : ''}
database mdb
suffix "${BASE_DN}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PW}
directory ${path.join(dir, 'db')}
maxsize 104857600
index objectClass eq
${strict ? 'access to * by users read by anonymous auth' : ''}
${memberof ? ['overlay memberof', 'memberof-group-oc groupOfNames', 'memberof-member-ad member', 'memberof-memberof-ad memberOf', 'memberof-refint true'].join('\n') : '# no memberof overlay: groups only as groupOfNames member lists'}
`;
}

const person = (cn: string, extra: string[], ad: boolean) =>
  [`dn: cn=${cn},ou=People,${BASE_DN}`, 'objectClass: inetOrgPerson', ...(ad ? ['objectClass: mailgwTestADUser'] : []), `cn: ${cn}`, `sn: ${cn}`, `userPassword: ${FIXTURE_PASSWORD}`, ...extra, ''].join('\n');
const group = (cn: string, members: string[], rid?: number, extra: string[] = []) =>
  [`dn: cn=${cn},ou=Groups,${BASE_DN}`, 'objectClass: groupOfNames', ...(rid ? ['objectClass: mailgwTestADGroup', `objectSid:: ${sidBase64(rid)}`] : []), `cn: ${cn}`, ...members.map((m) => `member: ${m}`), ...extra, ''].join('\n');

/** The fixture domain's SID (sub-authorities with bytes of 0x80 and more, as real ones have). */
export const DOMAIN_SID = 'S-1-5-21-3623811015-3361044348-30300820';
/** DOMAIN_SID-<rid> in AD's binary form (MS-DTYP 2.4.2.2), base64 for LDIF: built here by hand. */
function sidBase64(rid: number): string {
  const subs = [21, 3623811015, 3361044348, 30300820, rid];
  const b = Buffer.alloc(8 + 4 * subs.length);
  b[0] = 1;
  b[1] = subs.length;
  b.writeUIntBE(5, 2, 6);
  subs.forEach((s, i) => b.writeUInt32LE(s, 8 + 4 * i));
  return b.toString('base64');
}
/** DOMAIN_SID-<rid> in binary (as sidBase64). */
function sidRaw(rid: number): Buffer {
  return Buffer.from(sidBase64(rid), 'base64');
}
/** The Send-As extended right's GUID in AD's byte order (first three fields little-endian), written out by hand. */
export const SEND_AS_GUID_BYTES = Buffer.from([0x54, 0x1a, 0x72, 0xab, 0x2f, 0x1e, 0xd0, 0x11, 0x98, 0x19, 0x00, 0xaa, 0x00, 0x40, 0x52, 0x9b]);
/** Receive-As (ab721a56-…), another extended right: it must not count as Send-As. */
const RECEIVE_AS_GUID_BYTES = Buffer.from([0x56, 0x1a, 0x72, 0xab, 0x2f, 0x1e, 0xd0, 0x11, 0x98, 0x19, 0x00, 0xaa, 0x00, 0x40, 0x52, 0x9b]);
export interface FixtureAce {
  /** 0 allowed, 1 denied, 5 allowed object, 6 denied object (MS-DTYP 2.4.4.1). */
  type: 0 | 1 | 5 | 6;
  flags?: number;
  mask: number;
  guid?: Buffer;
  rid: number;
}
/** A self-relative security descriptor (MS-DTYP 2.4.6) with only a DACL, built byte by byte, independently of the code under test. */
export function securityDescriptor(aces: FixtureAce[]): Buffer {
  const aceBytes = aces.map((a) => {
    const sid = sidRaw(a.rid);
    const object = a.type === 5 || a.type === 6;
    const body = Buffer.concat([Buffer.alloc(4), ...(object ? [Buffer.alloc(4), ...(a.guid ? [a.guid] : [])] : []), sid]);
    body.writeUInt32LE(a.mask >>> 0, 0);
    if (object) body.writeUInt32LE(a.guid ? 1 : 0, 4);
    const head = Buffer.from([a.type, a.flags ?? 0, 0, 0]);
    head.writeUInt16LE(4 + body.length, 2);
    return Buffer.concat([head, body]);
  });
  const aclBody = Buffer.concat(aceBytes);
  const acl = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), aclBody]);
  acl.writeUInt16LE(acl.length, 2);
  acl.writeUInt16LE(aces.length, 4);
  const header = Buffer.alloc(20);
  header[0] = 1;
  header.writeUInt16LE(0x8004, 2); // SE_SELF_RELATIVE | SE_DACL_PRESENT
  header.writeUInt32LE(20, 16); // the DACL right after the header; no owner, group or SACL
  return Buffer.concat([header, acl]);
}
const tokenGroups = (...rids: number[]) => rids.map((rid) => `tokenGroups:: ${sidBase64(rid)}`);
const ad = (rid: number, primaryGroupID = 513) => [`objectSid:: ${sidBase64(rid)}`, `primaryGroupID: ${primaryGroupID}`];
const P = (cn: string) => `cn=${cn},ou=People,${BASE_DN}`;
const G = (cn: string) => `cn=${cn},ou=Groups,${BASE_DN}`;
/** A DN with every RFC 4515 filter metacharacter in it (an escaped comma, `(`, `*`, `)`). */
export const PAT_DN = `cn=Temp\\, Pat (*),ou=People,${BASE_DN}`;

export const FIXTURE_LDIF = [
  [`dn: ${BASE_DN}`, 'objectClass: dcObject', 'objectClass: organization', 'o: Contoso', 'dc: contoso', ''].join('\n'),
  ...['People', 'Groups', 'Contacts', 'Service'].map((ou) => [`dn: ou=${ou},${BASE_DN}`, 'objectClass: organizationalUnit', `ou: ${ou}`, ''].join('\n')),
  [`dn: ${SERVICE_DN}`, 'objectClass: person', 'cn: svc-mailgw', 'sn: svc', `userPassword: ${FIXTURE_PASSWORD}`, ''].join('\n'),
  person('Alice Smith', ['uid: alice', 'mail: alice@contoso.test', 'userPrincipalName: alice@contoso.test', 'sAMAccountName: alice', 'proxyAddresses: SMTP:alice@contoso.test', 'proxyAddresses: smtp:a.smith@contoso.test', 'proxyAddresses: X400:c=US;a= ;p=Contoso;s=Smith;', 'userAccountControl: 512', ...ad(1104), 'displayName: Alice Smith', 'title: Head of "R&D" <Labs>', 'telephoneNumber: +1 555 0100', 'company: Contoso Ltd', 'department: Research', `manager: cn=Bob Jones,ou=People,${BASE_DN}`, ...tokenGroups(1110, 1111, 513)], true),
  person('Bob Jones', ['uid: bob', 'mail: bob@contoso.test', 'mailAlternateAddress: robert@contoso.test'], true),
  person('Carol White', ['uid: carol', 'mail: carol@contoso.test', 'sAMAccountName: carol', 'userPrincipalName: carol@contoso.test', 'proxyAddresses: SMTP:carol@contoso.test', 'userAccountControl: 512', ...ad(1105), ...tokenGroups(1112, 1113, 1110, 513)], true),
  person('Dave Gone', ['uid: dave', 'mail: dave@contoso.test', 'sAMAccountName: dave', 'userPrincipalName: dave@contoso.test', 'proxyAddresses: SMTP:dave@contoso.test', 'userAccountControl: 514', ...ad(1106)], true),
  person('Star User', ['uid: star*user', 'mail: star@contoso.test'], false),
  person('Erin Black', ['uid: erin', 'mail: erin@contoso.test', 'sAMAccountName: erin', 'userPrincipalName: erin@contoso.test', 'proxyAddresses: SMTP:erin@contoso.test', 'userAccountControl: 512', ...ad(1107), ...tokenGroups(513)], true),
  person('Frank Stray', ['uid: frank', 'mail: frank@contoso.test', 'sAMAccountName: frank', 'userPrincipalName: frank@contoso.test', 'proxyAddresses: SMTP:frank@contoso.test', 'userAccountControl: 512', ...ad(1108, 1199)], true),
  person('Gina NoSid', ['uid: gina', 'mail: gina@contoso.test', 'sAMAccountName: gina', 'userPrincipalName: gina@contoso.test', 'proxyAddresses: SMTP:gina@contoso.test', 'userAccountControl: 512', 'primaryGroupID: 513'], true),
  [`dn: ${PAT_DN}`, 'objectClass: inetOrgPerson', 'cn: Temp, Pat (*)', 'sn: Temp', `userPassword: ${FIXTURE_PASSWORD}`, 'uid: pat', 'mail: pat@contoso.test', ''].join('\n'),
  [`dn: cn=Partner List,ou=Contacts,${BASE_DN}`, 'objectClass: inetOrgPerson', 'cn: Partner List', 'sn: List', 'mail: partner-list@contoso.test', ''].join('\n'),
  group('Helpdesk', [P('Alice Smith'), P('Bob Jones')], 1110),
  group('Relay Users', [G('Helpdesk')], 1111),
  group('Sales', [P('Carol White')], 1112, ['proxyAddresses: SMTP:sales@contoso.test', 'msExchRequireAuthToSendTo: FALSE']),
  group('Deny Relay', [P('Carol White')], 1113),
  group('Domain Users', [SERVICE_DN], 513),
  group('All Staff', [G('Domain Users')], 1114, ['proxyAddresses: SMTP:allstaff@contoso.test', 'msExchRequireAuthToSendTo: TRUE']),
  group('Temps', [PAT_DN]),
  // Exchange's message delivery restrictions (AD's authOrig, dLMemSubmitPerms, unauthOrig, dLMemRejectPerms).
  person('Henry Ford', ['uid: henry', 'mail: henry@contoso.test', 'sAMAccountName: henry', 'userPrincipalName: henry@contoso.test', 'proxyAddresses: SMTP:henry@contoso.test', 'userAccountControl: 512', ...ad(1109), `unauthOrig: ${P('Bob Jones')}`, `dLMemRejectPerms: ${G('Deny Relay')}`, 'submissionContLength: 10', 'msExchRecipLimit: 2', `publicDelegates: ${P('Alice Smith')}`], true),
  group('Board', [P('Henry Ford')], 1115, ['proxyAddresses: SMTP:board@contoso.test', `authOrig: ${P('Alice Smith')}`, `authOrig: cn=Partner List,ou=Contacts,${BASE_DN}`, `dLMemSubmitPerms: ${G('Sales')}`, `publicDelegates: ${G('Sales')}`]),
  // Exchange's MaxReceiveSize (AD's delivContLength, KB): ivy takes 10 KB, jack 20 KB, kim has 0 (no limit of her own).
  person('Ivy Small', ['uid: ivy', 'mail: ivy@contoso.test', 'proxyAddresses: SMTP:ivy@contoso.test', 'delivContLength: 10'], true),
  person('Jack Lim', ['uid: jack', 'mail: jack@contoso.test', 'proxyAddresses: SMTP:jack@contoso.test', 'delivContLength: 20'], true),
  person('Kim Zero', ['uid: kim', 'mail: kim@contoso.test', 'proxyAddresses: SMTP:kim@contoso.test', 'delivContLength: 0'], true),
  // Send As (nTSecurityDescriptor's DACL): Helpdesk may send as info@, carol is denied it (though in
  // Helpdesk: the deny wins); Domain Users' full control, erin's inherit-only Send-As and her
  // Receive-As grant nothing. tokenGroups as AD computes them (alice, carol, erin above).
  person('Info Desk', ['uid: info', 'mail: info@contoso.test', 'proxyAddresses: SMTP:info@contoso.test', `nTSecurityDescriptor:: ${securityDescriptor([
    { type: 6, mask: 0x100, guid: SEND_AS_GUID_BYTES, rid: 1105 },
    { type: 5, mask: 0x100, guid: SEND_AS_GUID_BYTES, rid: 1110 },
    { type: 0, mask: 0x000f01ff, rid: 513 },
    { type: 5, flags: 0x0a, mask: 0x100, guid: SEND_AS_GUID_BYTES, rid: 1107 },
    { type: 5, mask: 0x100, guid: RECEIVE_AS_GUID_BYTES, rid: 1107 },
  ]).toString('base64')}`], true),
  group('Project X', [P('Henry Ford')], 1116, ['proxyAddresses: SMTP:projectx@contoso.test', `dLMemSubmitPerms: ${G('Project X')}`, `dLMemSubmitPerms: ${G('Relay Users')}`]),
  [`dn: cn=Print Operators,ou=Groups,${BASE_DN}`, 'objectClass: groupOfUniqueNames', 'cn: Print Operators', `uniqueMember: ${G('Helpdesk')}`, ''].join('\n'),
].join('\n');

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`slapd harness: ${what} did not happen within 10 s`);
}

export interface SlapdOptions {
  /** false: no memberof overlay (no memberOf attribute; groups only as groupOfNames member lists). Default true. */
  readonly memberof?: boolean;
  /**
   * true: every operation but StartTLS needs TLS (security tls=128), and only a bound DN may
   * read (anonymous: bind only). A client that reconnects in clear or without binding finds
   * nothing. The fixture is loaded over StartTLS. Default false.
   */
  readonly tlsAndBindRequired?: boolean;
}

export async function startSlapd(opts: SlapdOptions = {}): Promise<TestSlapd | null> {
  if (slapdSkip()) return null;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-slapd-'));
  mkdirSync(path.join(dir, 'db'));
  writeFileSync(path.join(dir, 'ad.schema'), AD_SCHEMA);
  writeFileSync(path.join(dir, 'slapd.conf'), slapdConf(dir, opts.memberof ?? true, opts.tlsAndBindRequired ?? false));
  const conv = spawnSync(findExecutable('slaptest')!, ['-u', '-f', path.join(dir, 'slapd.conf')], { encoding: 'utf8' });
  if (conv.status !== 0) throw new Error(`slaptest: the harness' slapd.conf is wrong: ${conv.stderr}`);
  // A self-signed certificate for 127.0.0.1, for StartTLS and ldaps://.
  const cert = spawnSync(findExecutable('openssl')!, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { encoding: 'utf8' });
  if (cert.status !== 0) throw new Error(`openssl failed: ${cert.stderr}`);
  const caPem = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
  const port = await findFreePort('127.0.0.1');
  const tlsPort = await findFreePort('127.0.0.1');
  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = `ldaps://127.0.0.1:${tlsPort}`;
  let proc: ChildProcess | null = null;

  const start = async () => {
    const p = spawn(findExecutable('slapd')!, ['-f', path.join(dir, 'slapd.conf'), '-h', `${url}/ ${ldapsUrl}/`, '-d', process.env.SLAPD_DEBUG ?? '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    proc = p;
    let exited = false;
    p.once('exit', () => (exited = true));
    await waitFor(async () => {
      if (exited) throw new Error(`slapd exited (${p.exitCode} ${p.signalCode}): ${err}`);
      return listening(port);
    }, 'slapd listening');
  };
  const stop = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
  };
  const ldap = (tool: string, ldif: string, extra: string[] = []) => {
    const tlsArgs = opts.tlsAndBindRequired ? ['-ZZ'] : [];
    const env = { ...process.env, LDAPTLS_CACERT: path.join(dir, 'cert.pem') };
    const r = spawnSync(findExecutable(tool)!, ['-x', ...tlsArgs, '-H', url, '-D', ROOT_DN, '-w', ROOT_PW, ...extra], { input: ldif, encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`${tool} failed (${r.status}): ${r.stderr}`);
  };

  await start();
  ldap('ldapadd', FIXTURE_LDIF);
  let closed = false;
  return {
    url,
    port,
    ldapsUrl,
    caPem,
    get pid() {
      return (proc as ChildProcess | null)?.pid ?? 0;
    },
    stop,
    start,
    modify: (ldif) => ldap('ldapmodify', ldif),
    async close() {
      if (closed) return;
      closed = true;
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * gateway.yaml `directory` for the fixture as an Active Directory (the AD-shaped accounts are
 * inetOrgPerson entries carrying the AD attributes), the service password in
 * MAILGW_TEST_LDAP_PASSWORD (set here).
 */
export function adDirectory(ldap: TestSlapd): Record<string, unknown> {
  process.env.MAILGW_TEST_LDAP_PASSWORD = FIXTURE_PASSWORD;
  return { url: [ldap.url], bindDn: SERVICE_DN, bindPasswordEnv: 'MAILGW_TEST_LDAP_PASSWORD', baseDn: BASE_DN, preset: 'activeDirectory', userFilter: '(objectClass=mailgwTestADUser)', addressAttributes: ['proxyAddresses', 'mail'], timeout: '2s' };
}
