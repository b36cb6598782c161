// Domain security on the sending side (Exchange's TLSSendDomainSecureList and a send connector's
// DomainSecureEnabled), end to end: queued messages, real workers, a real Redis, far sides on
// loopback that ask for a client certificate, certificates from a CA made by the test, MX records
// from an injected resolver. Mail to a listed partner domain goes only over TLS, to a server whose
// trusted certificate names the domain itself, with mailgw's certificate presented; anything
// else waits (4.7.5). Other domains are delivered as before, with no certificate presented.
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import type { TLSSocket } from 'node:tls';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { enqueue, eventually, message } from './helpers/gateway.js';
import { makeRig, type Rig } from './helpers/rig.js';
import { FakeResolver } from './helpers/fake-dns.js';
import { makeTestCa, type KeyPair, type TestCa } from './helpers/test-ca.js';
import { capturedLogger, connector } from './helpers/tls-far.js';

let redis: TestRedis;
let ca: TestCa;
let certFile = '';
let keyFile = '';
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  [redis, ca] = await Promise.all([startRedis(), makeTestCa()]);
  const ours = await ca.issue(['mail.contoso.test', 'contoso.test']);
  certFile = path.join(os.tmpdir(), `mailgw-ds-${process.pid}.crt`);
  keyFile = path.join(os.tmpdir(), `mailgw-ds-${process.pid}.key`);
  await writeFile(certFile, ours.cert);
  await writeFile(keyFile, ours.key);
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
after(async () => {
  await redis?.stop();
  await ca?.close();
  await Promise.all([certFile, keyFile].map((f) => rm(f, { force: true })));
});

interface PartnerFar {
  readonly port: number;
  /** What each message's session showed: TLS, and the client certificate (trusted, its names). */
  readonly got: Array<{ rcptTo: string[]; secure: boolean; clientAuthorized: boolean; clientNames: string }>;
}

/** A far side that asks for a client certificate (trusting the test CA); no STARTTLS without `tls`. */
async function startPartnerFar(tls: KeyPair | null): Promise<PartnerFar> {
  const got: PartnerFar['got'] = [];
  const peers = new Map<string, { authorized: boolean; names: string }>();
  const server = new SMTPServer({
    disableReverseLookup: true,
    logger: false,
    authOptional: true,
    ...(tls ? { key: tls.key, cert: tls.cert, ca: [ca.cert], requestCert: true, rejectUnauthorized: false } : { hideSTARTTLS: true }),
    disabledCommands: ['AUTH', ...(tls ? [] : ['STARTTLS'])],
    onSecure(socket, session, cb) {
      const s = socket as TLSSocket;
      peers.set(session.id, { authorized: s.authorized, names: s.getPeerCertificate()?.subjectaltname ?? '' });
      cb();
    },
    onData(stream, session, cb) {
      stream.resume();
      stream.on('end', () => {
        const peer = peers.get(session.id);
        got.push({ rcptTo: session.envelope.rcptTo.map((r) => r.address), secure: session.secure, clientAuthorized: peer?.authorized ?? false, clientNames: peer?.names ?? '' });
        cb(null, '2.0.0 queued');
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const a = server.server.address();
  return { port: typeof a === 'object' && a ? a.port : 0, got };
}

async function setup(far: PartnerFar, domainSecureEnabled = true): Promise<{ r: Rig; lines: Array<Record<string, unknown>> }> {
  const r = await makeRig(redis.url, {
    routes: (root) => [{ domains: ['contoso.test'], to: `maildir:${root}` }],
    sendConnectors: [connector({ domainSecureEnabled })],
    gateway: { tlsSendDomainSecureList: ['partner.test'], domainSecureCertificate: certFile, domainSecureKey: keyFile },
    // One attempt to look at: retries far away.
    queue: { transientRetryInterval: '1h', messageRetryInterval: '1h', outboundConnectionFailureRetryInterval: '1h' },
  });
  cleanups.push(() => r.close());
  const { logger, lines } = capturedLogger();
  const resolver = new FakeResolver({
    mx: { 'partner.test': [{ exchange: 'mx.partner.test', priority: 10 }], 'other.test': [{ exchange: 'mx.other.test', priority: 10 }] },
    a: { 'mx.partner.test': ['127.0.0.1'], 'mx.other.test': ['127.0.0.1'] },
    txt: {},
  });
  await r.start({ logger, extraCAs: [ca.cert], resolver, mxPort: far.port });
  return { r, lines };
}

const done = (r: Rig, id: string) => eventually(async () => (await r.state(id)) === 'completed', `job ${id} completed`);
const firstReply = (r: Rig, id: string) =>
  eventually(async () => {
    const p = await r.progress(id);
    const x = p?.recipients[0];
    return x && x.attempts >= 1 && x.reply ? `${x.reply.code} ${x.reply.enhanced} ${x.reply.text}` : null;
  }, 'the first attempt');

describe('domain security on the sending side (tlsSendDomainSecureList, send connector domainSecureEnabled)', () => {
  test('a listed partner whose certificate names its domain gets the mail over TLS, with our certificate presented', async () => {
    const far = await startPartnerFar(await ca.issue(['partner.test', 'mx.partner.test']));
    const { r, lines } = await setup(far);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@partner.test'], body: message('to a partner') });
    await done(r, id);
    assert.equal(far.got.length, 1);
    assert.deepEqual(far.got[0], { rcptTo: ['bob@partner.test'], secure: true, clientAuthorized: true, clientNames: 'DNS:mail.contoso.test, DNS:contoso.test' });
    const policy = await eventually(() => lines.find((l) => l.msg === 'outbound TLS policy' && /domain security with partner\.test/.test(String(l.tlsPolicy))), 'the policy logged');
    assert.match(String(policy.tlsPolicy), /requireTLS, tlsAuthLevel DomainValidation, tlsDomain partner\.test/);
  });

  test("a partner server whose certificate names only its host, not the domain: nothing sent, the message waits (4.7.5)", async () => {
    const far = await startPartnerFar(await ca.issue(['mx.partner.test']));
    const { r } = await setup(far);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@partner.test'], body: message('wrong name') });
    assert.match(await firstReply(r, id), /^451 4\.7\.5 TLS policy of send connector "Internet" \(domain security with partner\.test, requireTLS/);
    assert.equal(far.got.length, 0);
    assert.notEqual(await r.state(id), 'completed');
  });

  test('a partner server without STARTTLS gets nothing in plain text', async () => {
    const far = await startPartnerFar(null);
    const { r } = await setup(far);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['bob@partner.test'], body: message('no tls') });
    assert.match(await firstReply(r, id), /^451 4\.7\.5 /);
    assert.equal(far.got.length, 0);
  });

  test('a domain not on the list, or a connector without domainSecureEnabled: delivered as before, no certificate presented', async () => {
    const far = await startPartnerFar(await ca.issue(['mx.other.test']));
    const { r } = await setup(far);
    const id = await enqueue(r.store, { from: 'alice@contoso.test', to: ['carol@other.test'], body: message('not a partner') });
    await done(r, id);
    assert.deepEqual(far.got.map((g) => [g.secure, g.clientNames]), [[true, '']]);
    const far2 = await startPartnerFar(await ca.issue(['mx.partner.test']));
    const off = await setup(far2, false);
    const id2 = await enqueue(off.r.store, { from: 'alice@contoso.test', to: ['bob@partner.test'], body: message('connector off') });
    await done(off.r, id2);
    assert.deepEqual(far2.got.map((g) => [g.secure, g.clientNames]), [[true, '']]);
  });
});
