// mailgw verify-recipient against a real Redis and a scripted server behind on loopback: it asks
// the next hop now and keeps the answer where the listeners read it, says what RCPT would be
// answered (a cached "yes" still serving while the server behind is down), shows only the cache
// with --cached, forgets with --forget; bad input and addresses that are not verified are errors
// that say why.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { keySpace } from '@mailgw/queue';
import { parseCached } from '@mailgw/worker';
import { runVerifyRecipient, type VerifyRecipientOptions } from '../../packages/cli/src/commands/verify-recipient.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { captureIO } from '../ops/helpers/cli-io.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';

let redis: TestRedis;
let conn: Redis;
let cfg: ConfigDir;
let far: FarSide;
const keys = keySpace('{vr}');

async function run(args: string[], opts: Partial<VerifyRecipientOptions> = {}, env: NodeJS.ProcessEnv = { REDIS_URL: redis.url }) {
  const io = captureIO();
  const code = await runVerifyRecipient(args, { config: cfg.gatewayFile, ...opts }, { stdout: io.stdout, stderr: io.stderr, env });
  return { code, out: io.out(), err: io.err() };
}

before(async () => {
  redis = await startRedis();
  conn = new Redis(redis.url);
  far = await startFarSide({ rcpt: (a) => (a.startsWith('nobody') ? '550 5.1.1 <' + a + '>: User unknown' : null) });
  cfg = makeConfigDir('mailgw-verify-');
  cfg.writeGateway(
    [
      'fqdn: mail.contoso.test',
      'dataDir: ./var',
      ACCEPTED,
      'redis: { prefix: "{vr}" }',
      'routes:',
      `  - { domains: [fabrikam.test], to: "smtp://127.0.0.1:${far.port}" }`,
      'recipientVerification: { domains: [fabrikam.test] }',
      '',
    ].join('\n'),
  );
  cfg.writeConnector('default.yaml', 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
});

after(async () => {
  conn?.disconnect();
  await far?.close();
  await redis?.stop();
  cfg?.remove();
});

describe('mailgw verify-recipient', () => {
  it('asks the next hop, keeps the answer for the listeners and says what RCPT would get', async () => {
    const ok = await run(['Alice@fabrikam.test']);
    assert.equal(ok.code, 0, ok.err);
    assert.deepEqual(ok.out.split('\n'), [
      '<alice@fabrikam.test>',
      '  cached before: nothing cached',
      `  probe: smtp://127.0.0.1:${far.port} answered RCPT TO with 250 Accepted`,
      `  RCPT would be answered 250 2.1.5 Recipient OK: smtp://127.0.0.1:${far.port} accepted RCPT TO:<Alice@fabrikam.test> (probe): 250 Accepted`,
      '  cached now for cacheTtl',
      '',
    ]);
    assert.equal(parseCached((await conn.get(keys.recipientVerification('alice@fabrikam.test')))!)?.kind, 'accepted');
    const no = await run(['nobody@fabrikam.test'], { json: true });
    assert.equal(no.code, 0);
    const j = JSON.parse(no.out) as { rcpt: string; probe: { kind: string }; reason: { code: string } };
    assert.deepEqual([j.rcpt, j.probe.kind, j.reason.code], ['550 5.1.1 User unknown', 'refused', 'unknown-at-next-hop']);
    assert.deepEqual(far.rcptSeen.map((r) => r.to), ['alice@fabrikam.test', 'nobody@fabrikam.test']);
  });

  it('--cached shows the listeners\' answer without asking; --forget drops it', async () => {
    const seen = far.rcptSeen.length;
    const c = await run(['alice@fabrikam.test'], { cached: true });
    assert.equal(c.code, 0);
    assert.match(c.out, /^<alice@fabrikam\.test>: accepted by smtp:\/\/127\.0\.0\.1:\d+ at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: 250 Accepted\n {2}RCPT would be answered 250 2\.1\.5 Recipient OK from the cache\n$/);
    assert.equal(far.rcptSeen.length, seen, 'not asked');
    const f = await run(['nobody@fabrikam.test'], { forget: true });
    assert.equal(f.code, 0);
    assert.match(f.out, /^Forgot the cached answer for <nobody@fabrikam\.test> \(refused by .*550 5\.1\.1 .*\): the next RCPT asks the next hop\.\n$/);
    assert.equal(await conn.exists(keys.recipientVerification('nobody@fabrikam.test')), 0);
    assert.equal((await run(['nobody@fabrikam.test'], { forget: true })).out, 'Nothing was cached for <nobody@fabrikam.test>.\n');
    assert.equal((await run(['nobody@fabrikam.test'], { cached: true })).out, '<nobody@fabrikam.test>: nothing cached\n  the next RCPT asks the next hop\n');
  });

  it('with the server behind down: exit 1, and the cached "yes" still serves RCPT', async () => {
    const port = far.port;
    await far.close();
    const r = await run(['alice@fabrikam.test']);
    assert.equal(r.code, 1);
    assert.match(r.out, new RegExp(`probe: could not verify: smtp://127\\.0\\.0\\.1:${port}: 451 4\\.4\\.1 Could not connect`));
    assert.match(r.out, /RCPT would be answered 250 2\.1\.5 Recipient OK \(from the cached answer\)/);
    const n = await run(['carol@fabrikam.test']);
    assert.equal(n.code, 1);
    assert.match(n.out, /RCPT would be answered 451 4\.4\.3 Recipient address could not be verified, please try again later/);
    far = await startFarSide(); // for after()
  });

  it('refuses bad input and addresses that are not verified, saying why', async () => {
    assert.deepEqual(await run([]), { code: 2, out: '', err: 'mailgw verify-recipient: give one address, e.g. mailgw verify-recipient alice@fabrikam.com\n' });
    assert.equal((await run(['not an address'])).code, 2);
    assert.match((await run(['a@fabrikam.test'], { from: 'bad sender' })).err, /--from "bad sender" is not an address/);
    assert.match((await run(['a@fabrikam.test'], { cached: true, forget: true })).err, /--cached and --forget do not go together/);
    const other = await run(['alice@contoso.test']);
    assert.equal(other.code, 1);
    assert.equal(other.err, 'mailgw verify-recipient: contoso.test is not in recipientVerification.domains (fabrikam.test): its recipients are not verified\n');
    const noRedis = await run(['alice@fabrikam.test'], {}, { REDIS_URL: 'redis://127.0.0.1:1' });
    assert.equal(noRedis.code, 1);
    assert.match(noRedis.err, /127\.0\.0\.1:1/);
  });
});
