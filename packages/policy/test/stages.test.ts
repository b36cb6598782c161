import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEW_TRANSACTION, admitConnection, authBackoff, authComplete, authMechanisms, authStart, connect, data, formatReply, helo, mail, rateLimit, rateLimitKey, rcpt, withTls, type Policy, type Session } from '../src/index.js';
import { compile, HASH, policy } from './fixture.js';

function session(p: Policy, localAddress: string, localPort: number, clientIP: string): Session {
  const r = connect(p, { localAddress, localPort, clientIP });
  assert.ok(r.session, formatReply(r.decision.reply) + ' ' + r.decision.reason.message);
  return r.session;
}

describe('connect: which connector serves a connection', () => {
  const p = policy({ blockedIPRanges: ['203.0.113.66'] }, [
    { name: 'All', usage: 'Internet', bindings: ['0.0.0.0:25', '[::]:25'] },
    { name: 'Net', bindings: ['0.0.0.0:25'], remoteIPRanges: ['10.0.0.0/8'], permissionGroups: ['AnonymousUsers'] },
    { name: 'Host', bindings: ['0.0.0.0:25'], remoteIPRanges: ['10.0.0.0(255.255.255.0)'], permissionGroups: ['AnonymousUsers'] },
    { name: 'Exact', bindings: ['192.0.2.1:25'], remoteIPRanges: ['10.0.0.0/8'], permissionGroups: ['AnonymousUsers'] },
    { name: 'Off', enabled: false, bindings: ['0.0.0.0:25'], remoteIPRanges: ['10.0.0.7'] },
    { name: 'V6', bindings: ['[::]:25'], remoteIPRanges: ['2001:db8::/48'], permissionGroups: ['AnonymousUsers'] },
    { name: 'Other port', bindings: ['0.0.0.0:587'], remoteIPRanges: ['10.0.0.7'], permissionGroups: ['AnonymousUsers'] },
  ]);
  const pick = (local: string, port: number, ip: string) => connect(p, { localAddress: local, localPort: port, clientIP: ip });
  it('the smallest containing range wins, whatever the notation', () => {
    assert.equal(pick('127.0.0.1', 25, '10.0.0.7').session?.connector.name, 'Host');
    assert.equal(pick('127.0.0.1', 25, '10.9.0.7').session?.connector.name, 'Net');
    assert.equal(pick('127.0.0.1', 25, '8.8.8.8').session?.connector.name, 'All');
  });
  it('a disabled connector is ignored', () => {
    assert.notEqual(pick('127.0.0.1', 25, '10.0.0.7').session?.connector.name, 'Off');
  });
  it('an exact-address binding beats the wildcard on a tie', () => {
    assert.equal(pick('192.0.2.1', 25, '10.9.0.7').session?.connector.name, 'Exact');
    assert.equal(pick('192.0.2.1', 25, '10.0.0.7').session?.connector.name, 'Host', 'a smaller range still wins over an exact binding');
  });
  it('only ranges of the client family count; IPv4-mapped clients are IPv4', () => {
    assert.equal(pick('::1', 25, '2001:db8::5').session?.connector.name, 'V6');
    assert.equal(pick('::1', 25, '2001:db9::5').session?.connector.name, 'All');
    assert.equal(pick('::ffff:127.0.0.1', 25, '::ffff:10.0.0.7').session?.connector.name, 'Host');
  });
  it('ports separate connectors', () => {
    assert.equal(pick('127.0.0.1', 587, '10.0.0.7').session?.connector.name, 'Other port');
    const none = pick('127.0.0.1', 587, '10.0.0.8');
    assert.equal(none.session, null);
    assert.equal(formatReply(none.decision.reply), '554 5.7.1 Access denied, no receive connector accepts connections from [10.0.0.8]');
    assert.equal(none.decision.disconnect, true);
    assert.equal(none.decision.reason.code, 'no-connector');
  });
  it('blocked IPs are refused before any connector', () => {
    const r = pick('127.0.0.1', 25, '203.0.113.66');
    assert.equal(r.session, null);
    assert.equal(r.decision.reason.code, 'blocked-ip');
    assert.equal(r.decision.reply.code, 554);
  });
});

describe('rights', () => {
  it('a deny wins over a group grant and over an explicit grant', () => {
    const p = policy({}, [
      {
        name: 'A',
        bindings: ['0.0.0.0:25'],
        remoteIPRanges: ['10.0.0.1'],
        permissionGroups: ['AnonymousUsers'],
        permissions: [
          { user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] },
          { user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient', 'ms-Exch-SMTP-Accept-Any-Sender'], deny: true },
        ],
      },
    ]);
    const s = session(p, '127.0.0.1', 25, '10.0.0.1');
    assert.ok(!s.rights.rights.has('ms-Exch-SMTP-Accept-Any-Recipient'));
    assert.ok(!s.rights.rights.has('ms-Exch-SMTP-Accept-Any-Sender'));
    assert.ok(s.rights.rights.has('ms-Exch-SMTP-Submit'));
    assert.equal(formatReply(mail(p, s, { sender: 'x@example.net' }).reply), '550 5.7.1 Anonymous client does not have permissions to send as this sender');
    assert.match(rcpt(p, s, { recipient: 'x@example.org', transaction: NEW_TRANSACTION }).decision.reason.message, /denied by permissions\[1\]/);
  });
  it('ExchangeLegacyServers: Headers-Organization and -Forest explicitly denied', () => {
    const p = policy({}, [{ name: 'A', bindings: ['0.0.0.0:25'], remoteIPRanges: ['10.0.0.1'], permissionGroups: ['ExchangeLegacyServers'] }]);
    const acl = p.connectors[0]!.acl.get('ExchangeLegacyInterop')!;
    assert.ok(acl.denies.has('ms-Exch-Accept-Headers-Forest'));
    assert.ok(acl.grants.has('ms-Exch-SMTP-Accept-Any-Recipient'));
  });
});

describe('auth', () => {
  const p = policy({ users: [{ name: 'Alice', passwordHash: HASH, addresses: ['alice@contoso.test'] }] }, [
    { name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'] },
    { name: 'Plain', usage: 'Internet', bindings: ['0.0.0.0:25'], authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['AnonymousUsers', 'ExchangeUsers'] },
  ]);
  it('authBackoff: at the configured number of recent failures, 454 4.7.0 before any password check; failures 0 turns it off', () => {
    const s = session(p, '127.0.0.1', 587, '10.0.0.1');
    assert.equal(authBackoff(p, s, 9).verdict, 'accept', 'default: 10 failures');
    const d = authBackoff(p, s, 10);
    assert.equal(formatReply(d.reply), '454 4.7.0 Temporary authentication failure');
    assert.match(d.reason.message, /10 or more failed AUTH attempts from 10\.0\.0\.1 within 900000 ms/);
    const strict = policy({ authBackoff: { failures: 2, window: '1m' } }, [{ name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'] }]);
    assert.equal(authBackoff(strict, session(strict, '127.0.0.1', 587, '10.0.0.1'), 2).verdict, 'defer');
    const off = policy({ authBackoff: { failures: 0 } }, [{ name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'] }]);
    assert.equal(authBackoff(off, session(off, '127.0.0.1', 587, '10.0.0.1'), 1000).verdict, 'accept');
  });
  it('BasicAuthRequireTLS: nothing offered and 504 5.7.4 before STARTTLS; PLAIN/LOGIN after', () => {
    const s = session(p, '127.0.0.1', 587, '10.0.0.1');
    assert.deepEqual(authMechanisms(s), []);
    assert.equal(formatReply(authStart(s, 'PLAIN').reply), '504 5.7.4 Unrecognized authentication type');
    const t = withTls(s);
    assert.deepEqual(authMechanisms(t), ['PLAIN', 'LOGIN']);
    assert.equal(authStart(t, 'login').verdict, 'accept');
    assert.equal(formatReply(authStart(t, 'CRAM-MD5').reply), '504 5.7.4 Unrecognized authentication type');
  });
  it('rights switch to Authenticated Users after AUTH; failures say nothing about the user', () => {
    const s = withTls(session(p, '127.0.0.1', 587, '10.0.0.1'));
    assert.equal(s.rights.rights.size, 0);
    const bad = authComplete(p, s, 'alice', false);
    const ghost = authComplete(p, s, 'ghost', true);
    assert.deepEqual(bad.decision.reply, ghost.decision.reply);
    assert.equal(formatReply(bad.decision.reply), '535 5.7.3 Authentication unsuccessful');
    const ok = authComplete(p, s, 'ALICE', true);
    assert.equal(formatReply(ok.decision.reply), '235 2.7.0 Authentication successful');
    assert.ok(ok.session.rights.rights.has('ms-Exch-SMTP-Accept-Any-Recipient'));
    assert.deepEqual(authMechanisms(ok.session), [], 'no second AUTH');
  });
  it('plaintext BasicAuth is allowed where configured', () => {
    assert.deepEqual(authMechanisms(session(p, '127.0.0.1', 25, '10.0.0.1')), ['PLAIN', 'LOGIN']);
  });
});

describe('MAIL', () => {
  const p = policy({ users: [{ name: 'alice', passwordHash: HASH, addresses: ['alice@contoso.test'] }] }, [
    { name: 'Client', usage: 'Client', bindings: ['0.0.0.0:587'], requireTLS: true, maxMessageSize: '1MB' },
  ]);
  it('requireTLS comes first and disconnects', () => {
    const d = mail(p, session(p, '127.0.0.1', 587, '10.0.0.1'), { sender: 'alice@contoso.test' });
    assert.equal(formatReply(d.reply), '451 5.7.3 STARTTLS is required to send mail');
    assert.equal(d.disconnect, true);
  });
  it('no Submit: anonymous 530, authenticated 550', () => {
    const t = withTls(session(p, '127.0.0.1', 587, '10.0.0.1'));
    assert.equal(formatReply(mail(p, t, { sender: 'alice@contoso.test' }).reply), '530 5.7.1 Client was not authenticated');
    const q = policy({ users: [{ name: 'alice', passwordHash: HASH }] }, [
      { name: 'C', usage: 'Client', bindings: ['0.0.0.0:587'], permissions: [{ user: 'alice', extendedRights: ['ms-Exch-SMTP-Submit'], deny: true }] },
    ]);
    const a = authComplete(q, withTls(session(q, '127.0.0.1', 587, '10.0.0.1')), 'alice', true).session;
    assert.equal(formatReply(mail(q, a, { sender: 'alice@contoso.test' }).reply), '550 5.7.1 Client does not have permissions to submit to this server');
  });
  it('SIZE over the limit, the null sender, own addresses, invalid addresses', () => {
    const a = authComplete(p, withTls(session(p, '127.0.0.1', 587, '10.0.0.1')), 'alice', true).session;
    assert.equal(formatReply(mail(p, a, { sender: 'alice@contoso.test', declaredSize: 2 * 1024 * 1024 }).reply), '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.equal(mail(p, a, { sender: 'Alice@CONTOSO.test', declaredSize: 1000 }).reason.code, 'own-address');
    assert.equal(mail(p, a, { sender: '' }).reason.code, 'null-sender');
    assert.equal(formatReply(mail(p, a, { sender: 'alice@' }).reply), '501 5.1.7 Invalid address');
  });
});

describe('rate limit, recipients, DATA', () => {
  const p = policy({ recipients: ['a@contoso.test'] }, [
    { name: 'D', usage: 'Internet', bindings: ['0.0.0.0:25'], maxRecipientsPerMessage: 2, messageRateLimit: 3, maxHopCount: 5, maxHeaderSize: '1KB', maxMessageSize: '64KB' },
  ]);
  const s = session(p, '127.0.0.1', 25, '10.0.0.1');
  it('messageRateLimit by IP address', () => {
    assert.deepEqual(rateLimitKey(s), { key: 'D|ip:10.0.0.1', limit: 3 });
    assert.equal(rateLimit(s, 2).verdict, 'accept');
    const d = rateLimit(s, 3);
    assert.equal(formatReply(d.reply), '421 4.4.2 Message submission rate for this client has exceeded the configured limit');
    assert.equal(d.verdict, 'defer');
  });
  it('too many recipients is a 452 deferral', () => {
    assert.equal(rcpt(p, s, { recipient: 'a@contoso.test', transaction: { recipients: [{ local: 'x', domain: 'contoso.test' }] } }).decision.verdict, 'accept');
    const d = rcpt(p, s, { recipient: 'a@contoso.test', transaction: { recipients: [{ local: 'x', domain: 'contoso.test' }, { local: 'y', domain: 'contoso.test' }] } }).decision;
    assert.equal(formatReply(d.reply), '452 4.5.3 Too many recipients');
    assert.equal(d.verdict, 'defer');
  });
  it('unknown mailbox in an authoritative domain', () => {
    assert.equal(formatReply(rcpt(p, s, { recipient: 'b@contoso.test', transaction: NEW_TRANSACTION }).decision.reply), '550 5.1.1 User unknown');
    assert.equal(rcpt(p, s, { recipient: 'A@Contoso.Test', transaction: NEW_TRANSACTION }).decision.verdict, 'accept');
  });
  it('hop count, header size and message size', () => {
    assert.equal(formatReply(data(s, { receivedHeaders: 6, headerBytes: 10, messageBytes: 10 }).reply), '554 5.4.6 Hop count exceeded - possible mail loop');
    assert.equal(formatReply(data(s, { receivedHeaders: 5, headerBytes: 2000, messageBytes: 2000 }).reply), '552 5.3.4 Header size exceeds fixed maximum size');
    assert.equal(formatReply(data(s, { receivedHeaders: 0, headerBytes: 10, messageBytes: 70000 }).reply), '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.equal(data(s, { receivedHeaders: 5, headerBytes: 1024, messageBytes: 65536 }).verdict, 'accept');
  });
  it('bare CR/LF: refused under bareLinefeedRejectionEnabled (the default), before any other DATA check; allowed (normalised) otherwise', () => {
    const strict = policy({}, [{ name: 'Strict', usage: 'Internet', bindings: ['0.0.0.0:25'], maxHopCount: 1 }]);
    const lax = policy({}, [{ name: 'Lax', usage: 'Internet', bindings: ['0.0.0.0:25'], bareLinefeedRejectionEnabled: false }]);
    const st = session(strict, '127.0.0.1', 25, '10.0.0.1');
    const d = data(st, { bareLineEndings: true, receivedHeaders: 9, headerBytes: 10, messageBytes: 10 });
    assert.equal(d.reason.code, 'bare-linefeed');
    assert.equal(d.verdict, 'reject');
    assert.equal(data(st, { bareLineEndings: false, receivedHeaders: 0, headerBytes: 10, messageBytes: 10 }).verdict, 'accept');
    assert.equal(data(session(lax, '127.0.0.1', 25, '10.0.0.1'), { bareLineEndings: true, receivedHeaders: 0, headerBytes: 10, messageBytes: 10 }).verdict, 'accept', 'Lax normalises them');
  });
});

describe('connection limits', () => {
  const p = policy({}, [{ name: 'L', usage: 'Internet', bindings: ['0.0.0.0:25'], maxInboundConnection: 10, maxInboundConnectionPerSource: 'unlimited', maxInboundConnectionPercentagePerSource: 20 }]);
  const s = session(p, '127.0.0.1', 25, '10.0.0.1');
  it('maxInboundConnection, then the per-source share (20 % of 10 = 2), each closing the connection', () => {
    assert.equal(admitConnection(s, { open: 9, fromClient: 1 }).verdict, 'accept');
    const full = admitConnection(s, { open: 10, fromClient: 0 });
    assert.deepEqual([full.verdict, full.reason.code, full.disconnect], ['defer', 'max-inbound-connection', true]);
    const mine = admitConnection(s, { open: 5, fromClient: 2 });
    assert.deepEqual([mine.verdict, mine.reason.code, mine.disconnect], ['defer', 'max-inbound-connection-per-source', true]);
    assert.match(mine.reason.message, /10\.0\.0\.1 has 2 connections to connector "L" \(per-source limit 2\)/);
  });
});

describe('never an open relay by accident', () => {
  const relay = (ranges: string[], extra: Record<string, unknown> = {}) => ({
    name: 'Relay',
    bindings: ['0.0.0.0:25'],
    remoteIPRanges: ranges,
    permissionGroups: ['AnonymousUsers'],
    permissions: [{ user: 'NT AUTHORITY\\ANONYMOUS LOGON', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] }],
    ...extra,
  });
  it('anonymous relay from a /24 or less is allowed', () => {
    assert.ok(compile({}, [relay(['192.0.2.0/24'])]).ok);
  });
  it('anonymous relay from more than a /24 is refused, naming connector, file and grant', () => {
    const r = compile({}, [relay(['192.0.2.0/23'])]);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.errors[0]!.file, 'connectors.d/0.yaml');
      assert.equal(r.errors[0]!.path, 'remoteIPRanges');
      assert.match(r.errors[0]!.message, /connector "Relay" lets anonymous clients relay.*permissions\[0\].*open relay.*allowOpenRelay: true/);
    }
  });
  it('from everywhere (default ranges) is refused; allowOpenRelay turns it into a warning', () => {
    assert.equal(compile({}, [{ ...relay([]), remoteIPRanges: undefined }]).ok, false);
    const r = compile({}, [relay(['0.0.0.0/0'], { allowOpenRelay: true })]);
    assert.ok(r.ok);
    assert.match(r.warnings[0]!.message, /Started anyway because allowOpenRelay: true/);
  });
  it('ExternalAuthoritative from everywhere is refused too', () => {
    const r = compile({}, [{ name: 'Ext', bindings: ['0.0.0.0:25'], authMechanism: ['Tls', 'ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] }]);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.errors[0]!.message, /ExternalAuthoritative trusts them/);
  });
});

describe('HELO / EHLO', () => {
  const p = policy({}, [
    { name: 'Strict', usage: 'Internet', bindings: ['0.0.0.0:25'], requireEHLODomain: true },
    { name: 'Lax', usage: 'Internet', bindings: ['0.0.0.0:26'] },
  ]);
  it('requireEHLODomain wants a domain or an address literal', () => {
    const s = session(p, '127.0.0.1', 25, '10.0.0.1');
    assert.equal(helo(s, ['client.example.net']).verdict, 'accept');
    assert.equal(helo(s, ['[192.0.2.7]']).verdict, 'accept');
    assert.equal(formatReply(helo(s, ['not_a domain!']).reply), '501 5.0.0 EHLO requires domain address');
    assert.equal(helo(session(p, '127.0.0.1', 26, '10.0.0.1'), ['anything!']).verdict, 'accept');
  });
  it('one printable argument, everywhere', () => {
    const s = session(p, '127.0.0.1', 26, '10.0.0.1');
    assert.equal(formatReply(helo(s, []).reply), '501 5.5.4 Invalid arguments');
    assert.equal(formatReply(helo(s, ['a', 'b']).reply), '501 5.5.4 Invalid arguments');
    assert.equal(formatReply(helo(s, ['a\u0001b']).reply), '501 5.5.4 Invalid arguments');
  });
});
