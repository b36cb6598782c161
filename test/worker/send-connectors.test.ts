// Send connectors end to end: messages put in the queue as the listener does, delivered by real
// workers over real SMTP to real servers on 127.0.0.x (smtp-server, with certificates from a CA
// made by the test), with a real Redis. No mocks, no DNS (smart hosts are IP addresses).
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { compileSendConnector, formatIssue, sendConnectorSchema, type SendConnector } from '@mailgw/config';
import { findFreePort } from '@mailgw/queue';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { parseDsn } from './helpers/dsn.js';
import { enqueue, eventually, mailbox, message, withoutDeliveryHeaders } from './helpers/gateway.js';
import { makeRig, type Rig, type RigOptions } from './helpers/rig.js';
import { FakeResolver } from './helpers/fake-dns.js';
import type { StartWorkersOptions } from '@mailgw/worker';
import { makeTestCa, type KeyPair, type TestCa } from './helpers/test-ca.js';

interface Got {
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly remoteAddress: string;
  readonly helo: string;
  readonly secure: boolean;
  readonly user: string | null;
}

interface Far {
  readonly port: number;
  readonly got: Got[];
  /** AUTH attempts seen (accepted or not). */
  readonly logins: number;
  /** Most sessions open at once. */
  readonly maxConcurrent: number;
  close(): Promise<void>;
}

/** A far side: STARTTLS with `tls` (else none), AUTH when `auth` is given (then required). */
async function startFar(o: { tls?: KeyPair; auth?: { user: string; pass: string }; host?: string; dataDelayMs?: number } = {}): Promise<Far> {
  const got: Got[] = [];
  let logins = 0;
  let open = 0;
  let maxConcurrent = 0;
  const server = new SMTPServer({
    disableReverseLookup: true,
    logger: false,
    ...(o.tls ? { key: o.tls.key, cert: o.tls.cert } : { hideSTARTTLS: true }),
    disabledCommands: [...(o.auth ? [] : ['AUTH']), ...(o.tls ? [] : ['STARTTLS'])],
    authOptional: !o.auth,
    allowInsecureAuth: true,
    onConnect(_s, cb) {
      maxConcurrent = Math.max(maxConcurrent, ++open);
      cb();
    },
    onClose() {
      open--;
    },
    onAuth(auth, _s, cb) {
      logins++;
      if (o.auth && auth.username === o.auth.user && auth.password === o.auth.pass) return cb(null, { user: auth.username });
      cb(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
    },
    onData(stream, session: SMTPServerSession, cb) {
      stream.resume();
      stream.on('end', () => {
        got.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          remoteAddress: session.remoteAddress,
          helo: session.hostNameAppearsAs,
          secure: session.secure,
          user: typeof session.user === 'string' ? session.user : null,
        });
        setTimeout(() => cb(null, '2.0.0 queued'), o.dataDelayMs ?? 0);
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, o.host ?? '127.0.0.1', () => resolve());
  });
  const a = server.server.address();
  return {
    port: typeof a === 'object' && a ? a.port : 0,
    got,
    get logins() {
      return logins;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A send connector file's content, compiled as the config layer does. */
function connector(data: Record<string, unknown>, env: Record<string, string> = {}): SendConnector {
  const parsed = sendConnectorSchema.safeParse({ name: 'Out', addressSpaces: ['*'], ...data });
  if (!parsed.success) throw new Error(JSON.stringify(parsed.error.issues));
  const c = compileSendConnector(parsed.data, { file: 'send-connectors.d/out.yaml', secrets: 'resolve', env, readReferenced: (p) => ({ ok: false, error: p, file: p }) });
  if (!c.ok) throw new Error(c.errors.map(formatIssue).join('\n'));
  return c.connector as SendConnector;
}

let redis: TestRedis;
let ca: TestCa;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  [redis, ca] = await Promise.all([startRedis(), makeTestCa()]);
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
after(async () => {
  await redis?.stop();
  await ca?.close();
});

async function far(...args: Parameters<typeof startFar>): Promise<Far> {
  const f = await startFar(...args);
  cleanups.push(() => f.close());
  return f;
}
async function rig(o: Omit<RigOptions, 'routes'> & { routes?: RigOptions['routes']; start?: Partial<StartWorkersOptions> }): Promise<Rig> {
  // Mail for contoso.test (the sender's domain: DSNs come back to it) stays in a maildir.
  const r = await makeRig(redis.url, { routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }], ...o });
  cleanups.push(() => r.close());
  await r.start({ extraCAs: [ca.cert], ...o.start });
  return r;
}
const done = (r: Rig, id: string) => eventually(async () => (await r.state(id)) === 'completed', `job ${id} completed`);
const attempted = (r: Rig, id: string) => eventually(async () => ((await r.progress(id))?.recipients[0]?.attempts ?? 0) >= 1 && (await r.progress(id))!, 'an attempt');

describe('send connectors', () => {
  test('smart host failover: the first host is down, the second receives', async () => {
    const down = await findFreePort();
    const f = await far();
    const r = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${down}`, `127.0.0.1:${f.port}`] })] });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('failover') });
    await done(r, id);
    assert.equal(f.got.length, 1);
    assert.deepEqual(f.got[0]!.rcptTo, ['bob@fabrikam.test']);
    assert.equal((await r.progress(id))!.recipients[0]!.status, 'delivered');
  });

  test('sourceIPAddress and fqdn: the far side sees the connection from 127.0.0.5 and the connector EHLO name', async () => {
    const f = await far();
    const r = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${f.port}`], sourceIPAddress: '127.0.0.5', fqdn: 'out.contoso.test' })] });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('source ip') });
    await done(r, id);
    assert.equal(f.got[0]!.remoteAddress, '127.0.0.5');
    assert.equal(f.got[0]!.helo, 'out.contoso.test');
  });

  test('BasicAuth at a smart host (after STARTTLS); BasicAuthRequireTLS sends nothing to a host without STARTTLS (4.7.5)', async () => {
    const leaf = await ca.issue(['relay.test']);
    const good = await far({ tls: leaf, auth: { user: 'gw@contoso.test', pass: 's3cret' } });
    const env = { MAILGW_TEST_SMARTHOST_PASS: 's3cret' };
    const auth = { smartHostAuthMechanism: 'BasicAuth', authenticationCredential: { user: 'gw@contoso.test', passEnv: 'MAILGW_TEST_SMARTHOST_PASS' } };
    const r = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${good.port}`], ...auth }, env)] });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('auth') });
    await done(r, id);
    assert.equal(good.got[0]!.user, 'gw@contoso.test');
    assert.equal(good.got[0]!.secure, true, 'STARTTLS before AUTH when offered');

    const plain = await far({ auth: { user: 'gw@contoso.test', pass: 's3cret' } });
    const r2 = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${plain.port}`], ...auth, smartHostAuthMechanism: 'BasicAuthRequireTLS' }, env)] });
    const id2 = await enqueue(r2.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('auth needs tls') });
    const p = await attempted(r2, id2);
    assert.equal(p.recipients[0]!.status, 'pending');
    assert.equal(p.recipients[0]!.reply!.code, 451);
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /TLS policy of send connector "Out" \(smartHostAuthMechanism BasicAuthRequireTLS\)/);
    assert.equal(plain.logins, 0, 'no credentials were sent in plain text');
    assert.equal(plain.got.length, 0);
  });

  test('tlsAuthLevel CertificateValidation: a certificate from a trusted CA passes (any name); a self-signed one gets nothing (4.7.5)', async () => {
    const trusted = await far({ tls: await ca.issue(['some-other-name.test']) });
    const r = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${trusted.port}`], requireTLS: true, tlsAuthLevel: 'CertificateValidation' })] });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('cert ok') });
    await done(r, id);
    assert.equal(trusted.got[0]!.secure, true);

    const untrusted = await far({ tls: await ca.selfSigned(['relay.test']) });
    const r2 = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${untrusted.port}`], requireTLS: true, tlsAuthLevel: 'CertificateValidation' })] });
    const id2 = await enqueue(r2.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('cert bad') });
    const p = await attempted(r2, id2);
    assert.equal(p.recipients[0]!.status, 'pending');
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /tlsAuthLevel CertificateValidation/);
    assert.equal(untrusted.got.length, 0, 'never falls back to plain text');
  });

  test('tlsAuthLevel DomainValidation: the certificate must carry tlsDomain; a wrong name waits (4.7.5), then bounces with a DSN naming the policy', async () => {
    const right = await far({ tls: await ca.issue(['relay.test']) });
    const r = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${right.port}`], requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: 'relay.test' })] });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('domain ok') });
    await done(r, id);
    assert.equal(right.got.length, 1);

    const wildcard = await far({ tls: await ca.issue(['mx1.relay.test']) });
    const rw = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${wildcard.port}`], requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: '*.relay.test' })] });
    const idw = await enqueue(rw.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('wildcard ok') });
    await done(rw, idw);
    assert.equal(wildcard.got.length, 1);

    const wrong = await far({ tls: await ca.issue(['impostor.test']) });
    const r2 = await rig({
      sendConnectors: [connector({ addressSpaces: ['fabrikam.test'], smartHosts: [`127.0.0.1:${wrong.port}`], requireTLS: true, tlsAuthLevel: 'DomainValidation', tlsDomain: 'relay.test' })],
      queue: { messageExpirationTimeout: '2s' },
    });
    const id2 = await enqueue(r2.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('domain bad') });
    const p = await attempted(r2, id2);
    assert.equal(p.recipients[0]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[0]!.reply!.text, /tlsAuthLevel DomainValidation, tlsDomain relay\.test/);
    // Expired: the sender gets a DSN whose diagnostic says which policy failed.
    await done(r2, id2);
    const [dsnFile] = await eventually(() => mailbox(r2.root, 'alice@contoso.test').then((b) => (b.length ? b : null)), 'the DSN');
    const dsn = await parseDsn(withoutDeliveryHeaders(dsnFile!).rest);
    assert.equal(dsn.recipients[0]!['action'], 'failed');
    assert.match(dsn.recipients[0]!['diagnostic-code'] ?? '', /4\.7\.5 TLS policy of send connector "Out" \(requireTLS, tlsAuthLevel DomainValidation, tlsDomain relay\.test\)/);
    assert.equal(wrong.got.length, 0, 'never sent in plain text');
  });

  test('sender-dependent routing and cost: tenant A leaves through its own smart host, everyone else through the cheapest connector', async () => {
    const tenantA = await far();
    const cheap = await far();
    const dear = await far();
    const r = await rig({
      sendConnectors: [
        connector({ name: 'Dear', addressSpaces: ['*;10'], smartHosts: [`127.0.0.1:${dear.port}`] }),
        connector({ name: 'Cheap', addressSpaces: ['*;5'], smartHosts: [`127.0.0.1:${cheap.port}`] }),
        connector({ name: 'TenantA', addressSpaces: [{ address: '*', cost: 50, senderDomains: ['tenant-a.test'] }], smartHosts: [`127.0.0.1:${tenantA.port}`] }),
      ],
    });
    const a = await enqueue(r.store, { from: 'ceo@tenant-a.test', to: ['x@example.test'], body: message('from tenant a') });
    const b = await enqueue(r.store, { from: 'ceo@tenant-b.test', to: ['x@example.test'], body: message('from tenant b') });
    await Promise.all([done(r, a), done(r, b)]);
    assert.deepEqual(tenantA.got.map((g) => g.mailFrom), ['ceo@tenant-a.test']);
    assert.deepEqual(cheap.got.map((g) => g.mailFrom), ['ceo@tenant-b.test']);
    assert.equal(dear.got.length, 0);
    // The job's hop names its connector (what `mailgw queue` shows).
    const events = await eventually(async () => {
      const ev = (await r.tracking()).filter((e) => e.eventId === 'SEND');
      return ev.length >= 2 ? ev : null;
    }, 'SEND events');
    assert.equal(events.length, 2);
  });

  test('maxMessageSize: a larger message is not sent through the connector; it fails with 5.3.4', async () => {
    const f = await far();
    const r = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${f.port}`], maxMessageSize: '1KB' })] });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('big', 'x'.repeat(4000) + '\r\n') });
    await done(r, id);
    const p = (await r.progress(id))!;
    assert.equal(p.recipients[0]!.status, 'failed');
    assert.equal(p.recipients[0]!.reply!.enhanced, '5.3.4');
    assert.match(p.recipients[0]!.reply!.text, /send connector "Out"/);
    assert.equal(f.got.length, 0);
  });

  test('protocolLoggingLevel Verbose: the SMTP send protocol log has the session, commands and replies, never the password', async () => {
    const f = await far({ tls: await ca.issue(['relay.test']), auth: { user: 'gw', pass: 'n0t-in-the-log' } });
    const r = await rig({
      sendConnectors: [
        connector(
          { name: 'Logged Out', smartHosts: [`127.0.0.1:${f.port}`], protocolLoggingLevel: 'Verbose', smartHostAuthMechanism: 'BasicAuth', authenticationCredential: { user: 'gw', passEnv: 'MAILGW_TEST_LOG_PASS' } },
          { MAILGW_TEST_LOG_PASS: 'n0t-in-the-log' },
        ),
      ],
    });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('logged') });
    await done(r, id);
    const dir = path.join(r.dataDir, 'logs', 'smtp-send', 'Logged_Out');
    const text = await eventually(async () => {
      const files = await readdir(dir).catch(() => [] as string[]);
      const t = files.length ? await readFile(path.join(dir, files[0]!), 'utf8') : '';
      return /MAIL FROM:<alice@contoso\.test>/.test(t) && /,<,250/.test(t) ? { t, name: files[0]! } : null;
    }, 'the send protocol log');
    assert.match(text.name, /^SEND\d{8}\.LOG$/);
    assert.match(text.t, /^#Log-type: SMTP Send Protocol Log$/m);
    assert.match(text.t, /,Logged Out,[0-9A-F]+,0,,127\.0\.0\.1:\d+,\+,,/);
    assert.match(text.t, /,>,EHLO mail\.contoso\.test/);
    assert.match(text.t, /,>,STARTTLS/);
    assert.match(text.t, /,>,RCPT TO:<bob@fabrikam\.test>/);
    assert.ok(!text.t.includes('n0t-in-the-log') && !text.t.includes(Buffer.from('\0gw\0n0t-in-the-log').toString('base64')), 'the password is never logged');
  });

  test('messageRateLimit: over the limit per minute a message is not tried; it waits in the queue', async () => {
    const f = await far();
    const r = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${f.port}`], messageRateLimit: 1 })] });
    const ids = [await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('rate 1') }), await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test'], body: message('rate 2') })];
    const states = await eventually(async () => {
      const s = await Promise.all(ids.map((id) => r.state(id)));
      return s.includes('completed') && s.includes('delayed') ? s : null;
    }, 'one message sent, one waiting');
    assert.equal(f.got.length, 1);
    const waiting = ids[states.indexOf('delayed')]!;
    const p = await r.progress(waiting);
    assert.ok(!p || p.recipients[0]!.attempts === 0, 'the waiting message was not tried');
  });

  test('dnsRoutingEnabled with DomainValidation: the MX host name must be on the certificate (MX from an injected resolver)', async () => {
    const f = await far({ tls: await ca.issue(['mx.fabrikam.test']) });
    const dns = new FakeResolver({
      mx: { 'fabrikam.test': [{ exchange: 'mx.fabrikam.test', priority: 10 }], 'northwind.test': [{ exchange: 'mx.northwind.test', priority: 10 }] },
      a: { 'mx.fabrikam.test': ['127.0.0.1'], 'mx.northwind.test': ['127.0.0.1'] },
    });
    const r = await rig({ sendConnectors: [connector({ dnsRoutingEnabled: true, requireTLS: true, tlsAuthLevel: 'DomainValidation' })], start: { resolver: dns, mxPort: f.port } });
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@fabrikam.test', 'carol@northwind.test'], body: message('mx') });
    const p = await eventually(async () => {
      const x = await r.progress(id);
      return x && x.recipients[0]!.status === 'delivered' && x.recipients[1]!.attempts >= 1 ? x : null;
    }, 'fabrikam delivered, northwind tried');
    assert.deepEqual(f.got.map((g) => g.rcptTo), [['bob@fabrikam.test']]);
    assert.equal(p.recipients[1]!.status, 'pending');
    assert.equal(p.recipients[1]!.reply!.enhanced, '4.7.5');
    assert.match(p.recipients[1]!.reply!.text, /not met by mx\.northwind\.test\[127\.0\.0\.1\]/);
  });

  test('maxConnectionsPerDestination of the connector: never more sessions to its smart host than that', async () => {
    const f = await far({ dataDelayMs: 100 });
    const r = await rig({ sendConnectors: [connector({ smartHosts: [`127.0.0.1:${f.port}`], maxConnectionsPerDestination: 1 })] });
    const ids = await Promise.all([1, 2, 3, 4].map((n) => enqueue(r.store, { from: 'alice@contoso.test', to: [`u${n}@fabrikam.test`], body: message(`limit ${n}`) })));
    await Promise.all(ids.map((id) => done(r, id)));
    assert.equal(f.got.length, 4);
    assert.equal(f.maxConcurrent, 1);
  });
});
