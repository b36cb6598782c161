// A running `mailgw start` and its logs: at start it deletes tracking, receive and send protocol
// log files past gateway.yaml's `logs` limits (back-dated with utimes), keeping today's; and with
// the log files on a full disk (today's tracking, receive and send protocol logs are /dev/full,
// where every write fails with ENOSPC) mail is still accepted and delivered (to a mailbox and
// through a send connector), each failure is logged, and mailgw_log_write_failures_total counts it.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { eventually, mailbox, message } from '../worker/helpers/gateway.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess } from './helpers/gateway-process.js';

const DAY = 86_400_000;
const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
const FULL = '/dev/full';

let redis: TestRedis;
let cfg: ConfigDir;
let gw: GatewayProcess;
let port: number;
let base: string;
let logs: string;
let far: FarSide;

function backDated(file: string, bytes: number, ageDays: number): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.alloc(bytes, 0x61));
  const t = (Date.now() - ageDays * DAY) / 1000;
  utimesSync(file, t, t);
}

before(async () => {
  redis = await startRedis();
  port = await freePort();
  const httpPort = await freePort();
  far = await startFarSide();
  cfg = makeConfigDir('mailgw-logs-');
  logs = path.join(cfg.dir, 'var', 'logs');
  cfg.writeGateway(
    [
      'fqdn: mx.logs.test',
      'dataDir: ./var',
      ACCEPTED,
      'routes:',
      '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }',
      'processes: { listeners: 1, workers: 1 }',
      'queue: { drainTimeout: 3s }',
      // The protocol logs: at most 1 MB together.
      'logs: { receiveProtocolLogMaxDirectorySize: 1MB, sendProtocolLogMaxAge: 10d }',
      `http: { listen: "127.0.0.1:${httpPort}" }`,
      '',
    ].join('\n'),
  );
  cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${port}"]\ntarpitInterval: 0\nprotocolLoggingLevel: Verbose\n`);
  // Mail for northwind.test leaves through a send connector with a send protocol log.
  mkdirSync(path.join(cfg.dir, 'send-connectors.d'));
  writeFileSync(path.join(cfg.dir, 'send-connectors.d', 'northwind.yaml'), `name: Northwind\naddressSpaces: ["northwind.test"]\nsmartHosts: ["127.0.0.1:${far.port}"]\nprotocolLoggingLevel: Verbose\n`);
  base = `http://127.0.0.1:${httpPort}`;
});

after(async () => {
  const code = await gw?.stop();
  await redis?.stop();
  await far?.close();
  cfg?.remove();
  assert.equal(code, 0, gw?.output().slice(-2000));
});

describe('log retention and a full log disk in a running gateway', () => {
  it('deletes old and excess log files at start; with the log files on a full disk, mail is still accepted and delivered', { skip: !existsSync(FULL) && `${FULL} is missing` }, async () => {
    const now = Date.now();
    const tracking = path.join(logs, 'tracking');
    const protocol = path.join(logs, 'protocol', 'Default');
    // Tracking: 31 and 40 days old (deleted), 29 days (kept). Protocol: 600 KB files 2, 3, 4
    // days old (over 1 MB together: the two oldest deleted) and 45 days (deleted).
    backDated(path.join(tracking, `MSGTRK${ymd(now - 40 * DAY)}.log`), 100, 40);
    backDated(path.join(tracking, `MSGTRK${ymd(now - 31 * DAY)}.log`), 100, 31);
    backDated(path.join(tracking, `MSGTRK${ymd(now - 29 * DAY)}.log`), 100, 29);
    backDated(path.join(protocol, `RECV${ymd(now - 45 * DAY)}.LOG`), 100, 45);
    for (const age of [4, 3, 2]) backDated(path.join(protocol, `RECV${ymd(now - age * DAY)}.LOG`), 600 * 1024, age);
    // Send protocol log (sendProtocolLogMaxAge: 10d): 12 days old deleted, 8 days kept.
    const send = path.join(logs, 'smtp-send', 'Northwind');
    backDated(path.join(send, `SEND${ymd(now - 12 * DAY)}.LOG`), 100, 12);
    backDated(path.join(send, `SEND${ymd(now - 8 * DAY)}.LOG`), 100, 8);
    // Today's files are on a "full disk": every write to /dev/full fails with ENOSPC.
    symlinkSync(FULL, path.join(tracking, `MSGTRK${ymd(now)}.log`));
    symlinkSync(FULL, path.join(protocol, `RECV${ymd(now)}.LOG`));
    symlinkSync(FULL, path.join(send, `SEND${ymd(now)}.LOG`));

    gw = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url });
    await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('log retention deleted') && l.log === 'protocol', 'the protocol log retention');
    await eventually(() => readdirSync(tracking).length === 2, 'the tracking log retention');
    assert.deepEqual(readdirSync(tracking).sort(), [`MSGTRK${ymd(now - 29 * DAY)}.log`, `MSGTRK${ymd(now)}.log`].sort());
    assert.deepEqual(readdirSync(protocol).sort(), [`RECV${ymd(now - 2 * DAY)}.LOG`, `RECV${ymd(now)}.LOG`].sort());
    await eventually(() => readdirSync(send).length === 2, 'the send protocol log retention');
    assert.deepEqual(readdirSync(send).sort(), [`SEND${ymd(now - 8 * DAY)}.LOG`, `SEND${ymd(now)}.LOG`].sort());

    // Mail flows although no log line can be written.
    for (const subject of ['first', 'second']) {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port });
      try {
        await c.ehlo();
        const t = await c.transaction('sender@example.net', ['alice@contoso.test'], message(subject));
        assert.equal(t.end?.code, 250, t.end?.last);
      } finally {
        await c.quit();
      }
    }
    const box = path.join(cfg.dir, 'var', 'mailboxes');
    await eventually(async () => (await mailbox(box, 'alice@contoso.test')).length === 2, 'both messages in the mailbox');
    // And out through the send connector, whose protocol log cannot be written either.
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    try {
      await c.ehlo();
      const t = await c.transaction('alice@contoso.test', ['carol@northwind.test'], message('outbound'));
      assert.equal(t.end?.code, 250, t.end?.last);
    } finally {
      await c.quit();
    }
    await eventually(() => far.messages.length === 1, 'the message at the far side');
    assert.deepEqual(far.messages[0]!.rcptTo, ['carol@northwind.test']);

    const failed = (what: string) => gw.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(`${what} log write failed`));
    await eventually(() => failed('tracking').length > 0 && failed('protocol').length > 0 && failed('send protocol').length > 0, 'the tracking, receive and send protocol log failures logged');
    assert.equal(failed('tracking')[0]!.code, 'ENOSPC');
    assert.equal(failed('protocol')[0]!.code, 'ENOSPC');
    assert.equal(failed('protocol').length, 1, 'reported once per failure episode, not per line');
    assert.equal(failed('send protocol')[0]!.code, 'ENOSPC');
    assert.equal(failed('send protocol')[0]!.connector, 'Northwind');
    assert.equal(failed('send protocol').length, 1, 'reported once per failure episode, not per line');

    const text = await eventually(async () => {
      const t = await (await fetch(`${base}/metrics`)).text();
      return /^mailgw_log_write_failures_total\{log="tracking",role="(listener|worker)"\} [1-9]/m.test(t) && /^mailgw_log_write_failures_total\{log="protocol",role="listener"\} 1$/m.test(t) && /^mailgw_log_write_failures_total\{log="send-protocol",role="worker"\} 1$/m.test(t) ? t : null;
    }, 'mailgw_log_write_failures_total for the three logs');
    // Each process prunes at start; the file is deleted by whichever got there first (one count in all).
    const deleted = (log: string, reason: string) => [...text.matchAll(new RegExp(`^mailgw_log_retention_deleted_files_total\\{log="${log}",reason="${reason}",role="[^"]+"\\} (\\d+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(deleted('protocol', 'max-directory-size'), 2);
    assert.equal(deleted('protocol', 'max-age'), 1);
    assert.equal(deleted('send-protocol', 'max-age'), 1);
  });
});
