// Exchange's Send As (Add-ADPermission -ExtendedRights Send-As) from Active Directory: a
// directory user may use as MAIL FROM the address of another object (a shared mailbox) whose
// DACL grants it, or a group it is in (tokenGroups), the Send-As right; a deny wins; full
// control, other extended rights and inherit-only entries do not count. End to end over real
// SMTP (in-process listeners, real Redis, real slapd holding the security descriptors written
// byte by byte in the harness), and the DACL reading on its own, malformed descriptors included.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDirectoryService, type DirectoryService } from '@mailgw/directory';
import { SEND_AS_RIGHT_GUID, formatGuid, parseDacl, sendAsDecision } from '@mailgw/policy';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { DOMAIN_SID, FIXTURE_PASSWORD, SEND_AS_GUID_BYTES, adDirectory, securityDescriptor, slapdSkip, startSlapd, type TestSlapd } from '../harness/slapd.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';

const skip = slapdSkip();
const SENDER_OK = '250 2.1.0 Sender OK';
const SEND_AS_DENIED = '550 5.7.1 Client does not have permissions to send as this sender';
const DIR_DOWN = '451 4.4.3 Directory lookup failed, please try again later';

let ldap: TestSlapd;
let redis: TestRedis;
let gw: TestGateway;
let dir: DirectoryService;
let port: number;
/** The same gateway with sendAsPermissions: false. */
let gwOff: TestGateway;
let dirOff: DirectoryService;
let portOff: number;

before(async () => {
  if (skip) return;
  ldap = (await startSlapd())!;
  redis = await startRedis({ appendonly: false });
  [port, portOff] = await Promise.all([freePort(), freePort()]);
  const people = (p: number) => ({ 'people.yaml': { name: 'People', bindings: [`127.0.0.1:${p}`], tarpitInterval: '0s', authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['ExchangeUsers'] } });
  const gateway = await baseGateway({ directory: adDirectory(ldap) });
  dir = createDirectoryService({ config: compile(gateway, people(port)).config.gateway.directory!, redisUrl: redis.url });
  gw = await startGateway({ redisUrl: redis.url, gateway, connectors: people(port), directory: dir });
  const gatewayOff = await baseGateway({ directory: { ...adDirectory(ldap), sendAsPermissions: false } });
  dirOff = createDirectoryService({ config: compile(gatewayOff, people(portOff)).config.gateway.directory!, redisUrl: redis.url });
  gwOff = await startGateway({ redisUrl: redis.url, gateway: gatewayOff, connectors: people(portOff), directory: dirOff });
});

after(async () => {
  await gw?.close();
  await gwOff?.close();
  await dir?.close();
  await dirOff?.close();
  await ldap?.close();
  await redis?.stop();
});

async function mailAs(login: string, from: string, p = port): Promise<string> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: p, localAddress: '127.0.0.9' });
  await c.ehlo();
  assert.equal((await c.authPlain(login, FIXTURE_PASSWORD)).last, '235 2.7.0 Authentication successful', login);
  const reply = (await c.cmd(`MAIL FROM:<${from}>`)).last;
  await c.quit();
  return reply;
}

describe('Send As from the directory (nTSecurityDescriptor, tokenGroups)', { skip }, () => {
  it('alice, in Helpdesk, may send as the shared mailbox info@; carol, in Helpdesk but denied, may not; erin (full control by Domain Users, an inherit-only entry, Receive-As) may not', async () => {
    assert.equal(await mailAs('alice@contoso.test', 'info@contoso.test'), SENDER_OK);
    const granted = gw.logs.find((l) => l.msg === 'sending as another object (Send As)');
    assert.deepEqual([granted?.user, granted?.from, granted?.object], ['alice@contoso.test', 'info@contoso.test', 'cn=Info Desk,ou=People,dc=contoso,dc=test']);
    assert.match(String(granted?.why), new RegExp(`^info@contoso\\.test is held by cn=Info Desk,ou=People,dc=contoso,dc=test, on which directory user alice@contoso\\.test has Send As \\(Send As is granted to ${DOMAIN_SID}-1110\\)$`));
    assert.equal(await mailAs('carol', 'info@contoso.test'), SEND_AS_DENIED);
    assert.equal(await mailAs('erin', 'info@contoso.test'), SEND_AS_DENIED);
    const refused = gw.logs.filter((l) => l.reason === 'sender-not-permitted').map((l) => String(l.why));
    assert.equal(refused.length, 2);
    assert.match(refused[0]!, new RegExp(`info@contoso\\.test is in an internal domain; user carol lacks ms-Exch-SMTP-Accept-Authoritative-Domain-Sender and it is not one of the user's addresses; Send As: cn=Info Desk,ou=People,dc=contoso,dc=test: Send As is denied to ${DOMAIN_SID}-1105`));
    assert.match(refused[1]!, /Send As: cn=Info Desk,ou=People,dc=contoso,dc=test: no Send As entry for the user's 4 SIDs/);
  });

  it("another user's address, one no object holds, and the user's own addresses", async () => {
    assert.equal(await mailAs('alice@contoso.test', 'carol@contoso.test'), SEND_AS_DENIED, 'no grant on carol');
    assert.equal(await mailAs('alice@contoso.test', 'nobody@contoso.test'), SEND_AS_DENIED);
    assert.match(String(gw.logs.filter((l) => l.reason === 'sender-not-permitted').at(-1)?.why), /Send As: no directory object holds nobody@contoso\.test/);
    const asked = gw.logs.length;
    assert.equal(await mailAs('alice@contoso.test', 'a.smith@contoso.test'), SENDER_OK, 'her own alias needs no Send As');
    assert.ok(!gw.logs.slice(asked).some((l) => /Send As/.test(String(l.why ?? ''))));
  });

  it('sendAsPermissions: false: only the connector rights and the own addresses count', async () => {
    assert.equal(await mailAs('alice@contoso.test', 'info@contoso.test', portOff), SEND_AS_DENIED);
    assert.equal(await mailAs('alice@contoso.test', 'alice@contoso.test', portOff), SENDER_OK);
  });

  it('the directory down between AUTH and MAIL: 451 4.4.3, never a guess', async () => {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' });
    await c.ehlo();
    assert.equal((await c.authPlain('alice@contoso.test', FIXTURE_PASSWORD)).last, '235 2.7.0 Authentication successful');
    await ldap.stop();
    try {
      assert.equal((await c.cmd('MAIL FROM:<info@contoso.test>')).last, DIR_DOWN);
      assert.equal((await c.cmd('MAIL FROM:<alice@contoso.test>')).last, SENDER_OK, 'her own address needs no directory');
    } finally {
      await ldap.start();
    }
    await c.quit();
  });
});

describe('reading a DACL (pure)', () => {
  const sid = (rid: number) => `${DOMAIN_SID}-${rid}`;
  it('the GUID of the Send-As right as AD stores it; the entries of a descriptor written byte by byte', () => {
    assert.equal(formatGuid(SEND_AS_GUID_BYTES), SEND_AS_RIGHT_GUID);
    const sd = securityDescriptor([
      { type: 6, mask: 0x100, guid: SEND_AS_GUID_BYTES, rid: 1105 },
      { type: 5, mask: 0x100, guid: SEND_AS_GUID_BYTES, rid: 1110 },
      { type: 0, mask: 0x000f01ff, rid: 513 },
      { type: 5, flags: 0x0a, mask: 0x100, guid: SEND_AS_GUID_BYTES, rid: 1107 },
      { type: 5, mask: 0x100, rid: 1111 },
    ]);
    const r = parseDacl(sd);
    assert.ok('aces' in r);
    assert.deepEqual(r.aces, [
      { allow: false, mask: 0x100, objectType: SEND_AS_RIGHT_GUID, sid: sid(1105), inheritOnly: false },
      { allow: true, mask: 0x100, objectType: SEND_AS_RIGHT_GUID, sid: sid(1110), inheritOnly: false },
      { allow: true, mask: 0x000f01ff, objectType: null, sid: sid(513), inheritOnly: false },
      { allow: true, mask: 0x100, objectType: SEND_AS_RIGHT_GUID, sid: sid(1107), inheritOnly: true },
      { allow: true, mask: 0x100, objectType: null, sid: sid(1111), inheritOnly: false },
    ]);
    const decide = (...rids: number[]) => sendAsDecision(r.aces, rids.map(sid));
    assert.deepEqual(decide(1104, 1110), { granted: true, why: `Send As is granted to ${sid(1110)}` });
    assert.deepEqual(decide(1105, 1110), { granted: false, why: `Send As is denied to ${sid(1105)}` }, 'a deny wins');
    assert.equal(decide(1107, 513).granted, false, 'inherit-only and full control do not grant');
    assert.equal(decide(1111).granted, false, 'all extended rights at once (no object type) do not count');
    assert.equal(sendAsDecision(r.aces, [sid(1110).toLowerCase()]).granted, true, 'SIDs compared without regard to case');
  });

  it('malformed descriptors are reasons, never grants or exceptions', () => {
    const good = securityDescriptor([{ type: 5, mask: 0x100, guid: SEND_AS_GUID_BYTES, rid: 1110 }]);
    const cases: Array<[string, Buffer, RegExp]> = [
      ['too short', good.subarray(0, 10), /at least 20/],
      ['revision 2', Buffer.concat([Buffer.from([2]), good.subarray(1)]), /revision 2/],
      ['DACL offset past the end', (() => { const b = Buffer.from(good); b.writeUInt32LE(5000, 16); return b; })(), /past the end/],
      ['ACL size past the end', (() => { const b = Buffer.from(good); b.writeUInt16LE(5000, 22); return b; })(), /past the end/],
      ['ACE size 0', (() => { const b = Buffer.from(good); b.writeUInt16LE(0, 30); return b; })(), /size of 0 bytes/],
      ['cut in the SID', good.subarray(0, good.length - 4), /past the end|out of the DACL|too short|runs past/],
      ['ACE count larger than the ACEs', (() => { const b = Buffer.from(good); b.writeUInt16LE(3, 24); return b; })(), /starts past|out of the DACL/],
    ];
    for (const [what, bytes, want] of cases) {
      const r = parseDacl(bytes);
      assert.ok('error' in r, what);
      assert.match(r.error, want, what);
    }
    // No DACL present: nothing granted.
    const none = Buffer.from(good);
    none.writeUInt16LE(0x8000, 2);
    assert.deepEqual(parseDacl(none), { aces: [] });
    // Corrupted bytes (a fixed pseudo-random sequence, the same every run): always an answer.
    let seed = 12345;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(good);
      for (let k = 0; k <= i % 3; k++) b[20 + next(b.length - 20)] = next(256);
      const r = parseDacl(b);
      assert.ok('aces' in r || typeof r.error === 'string');
    }
  });
});
