// Live reload of a running `mailgw start`: editing connectors.d/ and gateway.yaml (and SIGHUP)
// while clients hold open sessions. A valid change starts new bindings, applies changed
// connectors to new connections and new routes to the workers; an invalid one is refused and
// logged; a removed binding stops accepting while its open session finishes. No session drops.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp, dotStuff, queueIdOf } from '../listener/helpers/smtp-client.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { eventually, mailbox, message } from '../worker/helpers/gateway.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess, type LogLine } from './helpers/gateway-process.js';

let redis: TestRedis;
let cfg: ConfigDir;
let gw: GatewayProcess;
let p1: number;
let p2: number;
/** Opened before any reload: one in a transaction, one idle after EHLO. */
let inTransaction: RawSmtp;
let idle: RawSmtp;
/** Opened on the second connector's port before that connector is removed. */
let onRemoved: RawSmtp;
const sessions: RawSmtp[] = [];

const gatewayYaml = (mailboxes: string) =>
  ['fqdn: mx.reload.test', 'dataDir: ./var', ACCEPTED, 'routes:', `  - { domains: [contoso.test], to: "maildir:./var/${mailboxes}" }`, 'queue: { drainTimeout: 5s }', ''].join('\n');
const defaultConnector = (maxRcpts: number) => `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${p1}"]\ntarpitInterval: 0\nmaxRecipientsPerMessage: ${maxRcpts}\n`;

async function connect(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  sessions.push(c);
  return c;
}

/** Finishes a transaction that is past MAIL: RCPTs, DATA; returns the RCPT codes and the final reply. */
async function finish(c: RawSmtp, rcpts: string[], subject: string) {
  const codes: number[] = [];
  for (const r of rcpts) codes.push((await c.cmd(`RCPT TO:<${r}>`)).code);
  const data = await c.cmd('DATA');
  assert.equal(data.code, 354);
  c.write(dotStuff(message(subject)));
  c.write('.\r\n');
  return { codes, end: await c.read() };
}

/** Waits for the next reload outcome logged after index `from`. */
const nextReload = (from: number, test: (l: LogLine) => boolean = () => true) =>
  gw.waitForLog((l) => (l.msg === 'configuration reloaded' || String(l.msg).startsWith('configuration reload refused')) && test(l), 'a configuration reload', from);

before(async () => {
  redis = await startRedis();
  [p1, p2] = [await freePort(), await freePort()];
  cfg = makeConfigDir('mailgw-reload-');
  cfg.writeGateway(gatewayYaml('mb1'));
  cfg.writeConnector('10-default.yaml', defaultConnector(5));
  gw = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url });
  inTransaction = await connect(p1);
  await inTransaction.ehlo();
  assert.equal((await inTransaction.cmd('MAIL FROM:<a@example.net>')).code, 250);
  idle = await connect(p1);
  assert.equal((await idle.ehlo()).code, 250);
});

after(async () => {
  for (const s of sessions) s.destroy();
  const code = await gw?.stop();
  assert.equal(code, 0, gw?.output().slice(-2000));
  await redis?.stop();
  cfg?.remove();
});

describe('live reload of a running gateway', () => {
  it('a valid change: new binding listens, changed connector applies to new connections, workers use the new route; open sessions go on', async () => {
    const from = gw.logs.length;
    cfg.writeGateway(gatewayYaml('mb2'));
    cfg.writeConnector('10-default.yaml', defaultConnector(1));
    cfg.writeConnector('20-second.yaml', `name: Second\nusage: Internet\nbindings: ["127.0.0.1:${p2}"]\ntarpitInterval: 0\n`);
    const done = await nextReload(from, (l) => (l.connectors as string[] | undefined)?.includes('Second') === true);
    assert.equal(done.msg, 'configuration reloaded');
    assert.deepEqual(done.opened, [`127.0.0.1:${p2}`]);

    // A new connection to the changed connector gets its new limit.
    const fresh = await connect(p1);
    await fresh.ehlo();
    const t = await fresh.transaction('a@example.net', ['one@contoso.test', 'two@contoso.test']);
    assert.deepEqual(t.rcpt.map((r) => r.code), [250, 452]);
    await fresh.quit();

    // The session opened before keeps the connector it began with (5 recipients allowed).
    const held = await finish(inTransaction, ['one@contoso.test', 'two@contoso.test'], 'held across a reload');
    assert.deepEqual(held.codes, [250, 250]);
    assert.equal(held.end.code, 250, held.end.last);
    const queueId = queueIdOf(held.end);
    assert.equal((await idle.cmd('NOOP')).code, 250, 'the idle session is still open');

    // The worker delivers by the new route.
    const got = await eventually(async () => (await mailbox(`${cfg.dir}/var/mb2`, 'two@contoso.test')).find((f) => f.toString().includes(queueId)), 'delivery into the new route');
    assert.match(got.toString(), /Subject: held across a reload/);
    assert.deepEqual(await mailbox(`${cfg.dir}/var/mb1`, 'two@contoso.test'), []);

    onRemoved = await connect(p2);
    assert.equal(onRemoved.greeting?.code, 220);
    await onRemoved.ehlo();
    assert.equal((await onRemoved.cmd('MAIL FROM:<b@example.net>')).code, 250);
  });

  it('an invalid change is refused and logged; the running configuration stays', async () => {
    const from = gw.logs.length;
    cfg.writeConnector('30-bad.yaml', 'name: Bad\nbindings: ["0.0.0.0:99999"]\n');
    const refused = await nextReload(from);
    assert.match(String(refused.msg), /^configuration reload refused: the new configuration has errors/);
    assert.match(JSON.stringify(refused.errors), /30-bad\.yaml: bindings\[0\]: .*port must be 1-65535/);

    const fresh = await connect(p1);
    await fresh.ehlo();
    const t = await fresh.transaction('a@example.net', ['one@contoso.test', 'two@contoso.test']);
    assert.deepEqual(t.rcpt.map((r) => r.code), [250, 452], 'still the last valid configuration');
    await fresh.quit();
    const second = await connect(p2);
    assert.equal(second.greeting?.code, 220, 'the second binding still listens');
    await second.quit();
    assert.equal((await idle.cmd('NOOP')).code, 250);
  });

  it('a removed binding stops accepting; its open session finishes its transaction', async () => {
    const from = gw.logs.length;
    cfg.removeConnector('30-bad.yaml');
    cfg.removeConnector('20-second.yaml');
    const done = await nextReload(from, (l) => Array.isArray(l.stopped) && (l.stopped as string[]).length > 0);
    assert.equal(done.msg, 'configuration reloaded');
    assert.deepEqual(done.stopped, [`127.0.0.1:${p2}`]);
    assert.deepEqual(done.connectors, ['Default']);

    await assert.rejects(RawSmtp.connect({ host: '127.0.0.1', port: p2 }), /ECONNREFUSED/);
    const last = await finish(onRemoved, ['three@contoso.test'], 'finished on a removed binding');
    assert.equal(last.end.code, 250, last.end.last);
    await onRemoved.quit();
    assert.equal((await idle.cmd('NOOP')).code, 250);
  });

  it('SIGHUP reloads too', async () => {
    const from = gw.logs.length;
    gw.child.kill('SIGHUP');
    const done = await nextReload(from);
    assert.equal(done.msg, 'configuration reloaded');
    assert.equal(done.trigger, 'SIGHUP');
    assert.deepEqual(done.opened, []);
    assert.deepEqual(done.stopped, []);
    await idle.quit();
  });
});
