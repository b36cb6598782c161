// The operations HTTP server of a running `mailgw start`: /metrics after a known sequence of
// SMTP sessions and deliveries, the dashboard in headless Chromium (it loads, shows the
// connectors, and its Retry button retries a deferred message), the Traffic page's summary of
// the same sequence, the token and write checks, and /healthz failing while Redis is down.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { chromium } from 'playwright-core';
import { loadConfig } from '@mailgw/config/load';
import { QueueAdmin, GatewayMetrics, startOpsHttp } from '@mailgw/ops';
import { freePort, passwordHash } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { eventually, message } from '../worker/helpers/gateway.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess } from './helpers/gateway-process.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'test-token-0123456789';
let redis: TestRedis;
let cfg: ConfigDir;
let far: FarSide;
let gw: GatewayProcess;
let base: string;
let p1: number;
let p2: number;
const deferring = new Set(['slow@fabrikam.test']);

const auth = { authorization: `Bearer ${TOKEN}` };
const metricsText = async () => (await fetch(`${base}/metrics`)).text();

async function smtp(port: number, script: (c: RawSmtp) => Promise<void>): Promise<void> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  try {
    await c.ehlo();
    await script(c);
  } finally {
    await c.quit();
  }
}

before(async () => {
  redis = await startRedis();
  far = await startFarSide({ rcpt: (a) => (a === 'bad@fabrikam.test' ? '550 5.1.1 User unknown' : deferring.has(a) ? '451 4.2.0 Try again later' : null) });
  [p1, p2] = [await freePort(), await freePort()];
  const httpPort = await freePort();
  cfg = makeConfigDir('mailgw-http-');
  cfg.writeGateway(
    [
      'fqdn: mx.http.test',
      'dataDir: ./var',
      ACCEPTED,
      'users:',
      `  - { name: alice, passwordHash: "${await passwordHash()}", addresses: [alice@contoso.test] }`,
      'routes:',
      '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }',
      `  - { domains: ["*"], to: "smtp://127.0.0.1:${far.port}" }`,
      'queue: { transientRetryInterval: 1h, messageRetryInterval: 1h, outboundConnectionFailureRetryInterval: 1h, drainTimeout: 3s }',
      `http: { listen: "127.0.0.1:${httpPort}", token: "${TOKEN}", allowWrite: true }`,
      '',
    ].join('\n'),
  );
  cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${p1}"]\ntarpitInterval: 0\n`);
  cfg.writeConnector('20-submission.yaml', `name: Submission\nbindings: ["127.0.0.1:${p2}"]\nauthMechanism: [BasicAuth]\npermissionGroups: [ExchangeUsers]\ntarpitInterval: 0\n`);
  gw = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url });
  base = `http://127.0.0.1:${httpPort}`;
});

after(async () => {
  const code = await gw?.stop();
  await far?.close();
  await redis?.stop();
  cfg?.remove();
  assert.equal(code, 0, gw?.output().slice(-2000));
});

describe('operations HTTP server', () => {
  it('/metrics counts a known sequence of SMTP sessions and the deliveries that follow', async () => {
    // 1: one message, one local and one relayed recipient (the far side refuses it: FAIL + DSN).
    await smtp(p1, async (c) => {
      const t = await c.transaction('sender@example.net', ['alice@contoso.test', 'bad@fabrikam.test'], message('metrics'));
      assert.equal(t.end?.code, 250, t.end?.last);
    });
    // 2: two relay attempts, refused.
    await smtp(p1, async (c) => {
      const t = await c.transaction('sender@example.net', ['x@elsewhere.test', 'y@elsewhere.test']);
      assert.deepEqual(t.rcpt.map((r) => r.last.slice(0, 9)), ['550 5.7.1', '550 5.7.1']);
    });
    // 3: a failed AUTH on the submission connector.
    await smtp(p2, async (c) => assert.equal((await c.authPlain('alice', 'wrong')).code, 535));
    // 4: a message refused after DATA (hop count).
    await smtp(p1, async (c) => {
      const loop = Array.from({ length: 40 }, (_, i) => `Received: from hop${i}.test by hop${i + 1}.test; Mon, 1 Jan 2026 00:00:00 +0000\r\n`).join('');
      const t = await c.transaction('sender@example.net', ['alice@contoso.test'], message('loop', 'x\r\n', loop));
      assert.equal(t.end?.code, 554, t.end?.last);
    });

    const expected = [
      'mailgw_smtp_connections_total{connector="Default",result="quit",role="listener"} 3',
      'mailgw_smtp_connections_total{connector="Submission",result="quit",role="listener"} 1',
      'mailgw_smtp_messages_total{connector="Default",result="accepted",reason="",role="listener"} 1',
      'mailgw_smtp_messages_total{connector="Default",result="rejected",reason="hop-count",role="listener"} 1',
      'mailgw_smtp_refusals_total{connector="Default",reason="relay-denied",role="listener"} 2',
      'mailgw_smtp_relay_denied_total{connector="Default",role="listener"} 2',
      'mailgw_smtp_auth_failures_total{connector="Submission",role="listener"} 1',
      // alice into her mailbox; bad@ refused; the DSN for it sent to the sender's next hop.
      'mailgw_delivery_recipients_total{event="DELIVER",role="worker"} 1',
      'mailgw_delivery_recipients_total{event="FAIL",role="worker"} 1',
      'mailgw_delivery_recipients_total{event="SEND",role="worker"} 1',
      'mailgw_dsn_sent_total{kind="failed",role="worker"} 1',
      'mailgw_delivery_latency_seconds_count{event="DELIVER",role="worker"} 1',
      'mailgw_delivery_latency_seconds_count{event="SEND",role="worker"} 1',
      'mailgw_queue_jobs{state="completed",role="gateway"} 2',
      'mailgw_queue_jobs{state="delayed",role="gateway"} 0',
      'mailgw_redis_up{role="gateway"} 1',
    ];
    const text = await eventually(async () => {
      const t = await metricsText();
      return expected.every((l) => t.includes(`${l}\n`)) ? t : null;
    }, 'the expected metric values').catch(async (e: Error) => {
      throw new Error(`${e.message}\n${(await metricsText()).split('\n').filter((l) => l.startsWith('mailgw_')).join('\n')}`);
    });
    assert.match(text, /^# TYPE mailgw_delivery_latency_seconds histogram$/m);
    // Node's process metrics of every process, summed per role (the supervisor is "gateway").
    for (const role of ['gateway', 'listener', 'worker']) assert.match(text, new RegExp(`^process_cpu_user_seconds_total\\{role="${role}"\\} `, 'm'));
    // The worker processes' byte budget, summed over them: queue.workerMessageBytes (256 MB) each.
    const limit = Number(/^mailgw_worker_message_bytes_limit\{role="worker"\} (\d+)$/m.exec(text)?.[1]);
    assert.ok(limit > 0 && limit % (256 * 1024 * 1024) === 0, `mailgw_worker_message_bytes_limit ${limit}`);
    assert.match(text, /^mailgw_worker_deliveries_waiting_for_memory\{role="worker"\} 0$/m);
    assert.ok(far.messages.some((m) => m.mailFrom === '' && m.rcptTo.includes('sender@example.net')), 'the DSN went out');
  });

  it('the dashboard loads in Chromium, shows the connectors, and its Retry button retries', { skip: !existsSync(CHROMIUM) && `${CHROMIUM} is not installed` }, async () => {
    await smtp(p1, async (c) => assert.equal((await c.transaction('sender@example.net', ['slow@fabrikam.test'], message('retry me'))).end?.code, 250));
    const hop = `smtp://127.0.0.1:${far.port}`;
    await eventually(async () => {
      const s = (await (await fetch(`${base}/api/state`, { headers: auth })).json()) as { queue: { hops: Array<{ hop: string; status: string }> } };
      return s.queue.hops.some((h) => h.hop === hop && h.status === 'Retry');
    }, 'the deferred message on the dashboard API');

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const res = await page.goto(`${base}/?token=${TOKEN}`);
      assert.equal(res?.status(), 200);
      assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
      const connectors = await page.locator('#connectors tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
      assert.deepEqual(
        connectors.map((r) => r.slice(0, 5)),
        [
          ['Default', 'Enabled', 'Internet', `127.0.0.1:${p1}`, '4'],
          ['Submission', 'Enabled', 'Custom', `127.0.0.1:${p2}`, '1'],
        ],
      );
      const row = page.locator(`#queues tr[data-hop="${hop}"]`);
      assert.equal(await row.locator('td').nth(1).textContent(), 'Retry');
      assert.equal(far.messages.filter((m) => m.rcptTo.includes('slow@fabrikam.test')).length, 0);

      deferring.delete('slow@fabrikam.test');
      await row.locator('button[data-action="retry"]').click();
      await page.locator('#status', { hasText: `Retried 1 message for ${hop}` }).waitFor();
      await eventually(() => far.messages.some((m) => m.rcptTo.includes('slow@fabrikam.test')), 'the retried message at the far side');
    } finally {
      await browser.close();
    }
  });

  it('the dashboard draws the gateway\'s activity from the counters in Redis (Chromium; screenshot in test-results/dashboard.png)', { skip: !existsSync(CHROMIUM) && `${CHROMIUM} is not installed` }, async () => {
    // The processes add their per-minute counts to Redis every 10 s.
    type Series = { counts: Record<string, number[]>; latency: Record<string, Array<number | null>>; hops: Record<string, Array<number | null>> };
    const stats = async () => (await (await fetch(`${base}/api/stats?range=1h`, { headers: auth })).json()) as Series;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    await eventually(async () => {
      const s = await stats();
      return sum(s.counts.accepted!) >= 2 && sum(s.counts.delivered!) >= 2 && sum(s.counts.failed!) >= 1;
    }, 'accepted, delivered and failed counts in Redis', 30_000);
    const s = await stats();
    assert.equal(s.counts.accepted!.length, 60, 'one point per minute of the last hour');
    assert.ok(s.latency.p50!.some((v) => v !== null), 'a latency percentile where something was delivered');
    assert.equal((await fetch(`${base}/api/stats?range=7d`, { headers: auth })).status, 400);

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
      assert.equal((await page.goto(`${base}/?token=${TOKEN}`))?.status(), 200);
      const series = await page.locator('#chart-messages-1h polyline').evaluateAll((ps) => ps.map((p) => p.getAttribute('data-series')));
      for (const name of ['accepted', 'delivered', 'failed']) assert.ok(series.includes(name), `a line for ${name}: ${series.join(',')}`);
      // The legend totals are the gateway's, from Redis.
      const legend = await page.locator('figure:has(#chart-messages-1h) .legend').allTextContents();
      assert.ok(legend.some((t) => /accepted\s+\d+/.test(t)), legend.join(' | '));
      assert.equal(await page.locator('#chart-latency-1h polyline[data-series="p50"]').count() > 0, true);
      assert.equal(await page.locator('#processes tbody tr[data-process]').count() >= 2, true, 'the listener and worker processes of mailgw start');
      mkdirSync(new URL('../../test-results/', import.meta.url), { recursive: true });
      await page.screenshot({ path: new URL('../../test-results/dashboard.png', import.meta.url).pathname, fullPage: true });
    } finally {
      await browser.close();
    }
  });

  it('the Traffic page and /api/traffic: the last hour\'s summary of every process\'s tracking log, from Redis (after the sequence above)', async () => {
    type Summary = { received: { messages: number; bySource: Record<string, number> }; delivered: { recipients: number }; failed: { recipients: number }; dsns: Record<string, number>; top: { senders: Array<{ key: string }>; recipients: Array<{ key: string }>; failures: Array<{ key: string; count: number }> } };
    let last: Summary | null = null;
    const summary = await eventually(async () => {
      const r = await fetch(`${base}/api/traffic?since=1h`, { headers: auth });
      assert.equal(r.status, 200);
      const j = (await r.json()) as Summary;
      last = j;
      const to = j.top.recipients.map((x) => x.key);
      return j.failed.recipients === 1 && to.includes('alice@contoso.test') && to.includes('sender@example.net') ? j : null;
    }, 'the summary of the sequence').catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(last)}`);
    });
    // Alice delivered and the DSN sent back to the sender; bad@fabrikam.test failed at the far
    // side (the hop-count loop was refused after DATA: no RECEIVE, and relay denials are no
    // agent's refusals).
    assert.deepEqual(Object.keys(summary.received.bySource), ['SMTP']);
    assert.deepEqual(summary.dsns, { failed: 1 });
    assert.deepEqual(summary.top.senders.map((x) => x.key), ['sender@example.net']);
    assert.deepEqual(summary.top.failures, [{ key: '550 5.1.1 User unknown', count: 1 }]);
    const page = await fetch(`${base}/traffic?since=1h`, { headers: auth });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<nav><a href="\.\/">Dashboard<\/a> · <a href="messages">Messages<\/a> · <b>Traffic<\/b><\/nav>/);
    assert.match(html, /<b>last hour<\/b> · <a href="traffic\?since=1d">last day<\/a>/);
    assert.match(html, new RegExp(`<pre id="traffic">Mail traffic from .*\\n\\n {2}received +${summary.received.messages} messages? {2}`));
    assert.match(html, /\nTop senders \(messages received, bytes\)\n {2}\d +[\d.]+ K?B {2}sender@example\.net\n/);
    // The token, and a sane period.
    assert.equal((await fetch(`${base}/traffic`)).status, 401);
    const bad = await fetch(`${base}/api/traffic?since=90d`, { headers: auth });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /^since is a duration back from now, up to 31d/);
    assert.equal((await fetch(`${base}/traffic?since=%3Cscript%3E`, { headers: auth })).status, 400);
  });

  it('the dashboard needs the token; writes need the action header; /metrics and /healthz need neither', async () => {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 401);
    assert.match(await page.text(), /<input type="password" name="token"/);
    assert.equal((await fetch(`${base}/?token=wrong-token-000000000`, { redirect: 'manual' })).status, 401);
    const signIn = await fetch(`${base}/?token=${TOKEN}`, { redirect: 'manual' });
    assert.equal(signIn.status, 303);
    assert.match(signIn.headers.get('set-cookie') ?? '', /^mailgw_token=.*; HttpOnly; SameSite=Strict$/);
    assert.equal((await fetch(`${base}/api/state`)).status, 401);
    const csrf = await fetch(`${base}/api/retry`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"all":true}' });
    assert.equal(csrf.status, 403);
    const bad = await fetch(`${base}/api/suspend`, { method: 'POST', headers: { ...auth, 'x-mailgw-action': '1' }, body: '{}' });
    assert.equal(bad.status, 400);
    assert.equal((await fetch(`${base}/metrics`)).status, 200);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    // A request line whose URL cannot be parsed is the client's mistake: 400, not a 500 logged as an error.
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(Number(new URL(base).port), '127.0.0.1', () => s.write('GET http://[bad HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.match(raw, /"error":"malformed request URL"/);
  });

  it('the IP Block List over HTTP: listed, added with hours and a comment, refused at RCPT by the running listeners, removed', async () => {
    const post = (action: string, body: unknown) => fetch(`${base}/api/ip-block-list/${action}`, { method: 'POST', headers: { ...auth, 'x-mailgw-action': '1', 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const list = async () => ((await (await fetch(`${base}/api/ip-block-list`, { headers: auth })).json()) as { entries: Array<{ range: string; kind: string; comment: string; expiresAt: number | null }> }).entries;
    assert.equal((await fetch(`${base}/api/ip-block-list`)).status, 401, 'the token is needed');
    assert.deepEqual(await list(), []);
    const added = await post('add', { range: '127.0.0.90', hours: 2, comment: 'abuse report 4711' });
    assert.equal(added.status, 200);
    assert.match(((await added.json()) as { message: string }).message, /^127\.0\.0\.90 is on the IP Block List until 20\d\d-/);
    const [e] = await list();
    assert.deepEqual([e!.range, e!.kind, e!.comment], ['127.0.0.90', 'static', 'abuse report 4711']);
    assert.ok(Math.abs(e!.expiresAt! - (Date.now() + 2 * 3_600_000)) < 60_000);
    const rcpt = async () => {
      const c = await RawSmtp.connect({ host: '127.0.0.1', port: p1, localAddress: '127.0.0.90' });
      await c.ehlo();
      await c.cmd('MAIL FROM:<a@example.net>');
      const r = (await c.cmd('RCPT TO:<alice@contoso.test>')).last;
      await c.quit();
      return r;
    };
    await eventually(async () => (await rcpt()).startsWith('550 5.7.1 Recipient not authorized'), 'the entry to reach the listener', 5000);
    assert.equal((await post('add', { range: 'not-an-ip' })).status, 400);
    assert.equal((await post('add', { range: '127.0.0.91', hours: -1 })).status, 400);
    // The dashboard lists it; its Remove button takes it off (Chromium when installed, else the same POST).
    const fragment = /<table id="ip-block-list">.*?<\/table>/.exec(await (await fetch(`${base}/fragment`, { headers: auth })).text())?.[0] ?? '(no IP Block List table)';
    assert.match(fragment, /<tr data-range="127\.0\.0\.90"><td>127\.0\.0\.90<\/td><td>admin<\/td><td>(now|\d+s ago)<\/td><td>in (2h0m|1h59m)<\/td><td>abuse report 4711<\/td><td class="actions"><button type="button" data-action="ip-block-list\/remove" data-range="127\.0\.0\.90">Remove<\/button>/);
    if (existsSync(CHROMIUM)) {
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
      try {
        const page = await browser.newPage();
        assert.equal((await page.goto(`${base}/?token=${TOKEN}`))?.status(), 200);
        await page.locator('#ip-block-list tr[data-range="127.0.0.90"] button[data-action="ip-block-list/remove"]').click();
        await page.locator('#status', { hasText: '127.0.0.90 is off the IP Block List' }).waitFor();
        await page.locator('#ip-block-list td', { hasText: 'Nobody is blocked.' }).waitFor();
      } finally {
        await browser.close();
      }
    } else assert.equal((await post('remove', { range: '127.0.0.90' })).status, 200);
    assert.equal((await post('remove', { range: '127.0.0.90' })).status, 404);
    assert.deepEqual(await list(), []);
    await eventually(async () => (await rcpt()) === '250 2.1.5 Recipient OK', 'the removal to reach the listener', 5000);
  });

  it('read-only without allowWrite, off without a token', async () => {
    const loaded = loadConfig({ configPath: cfg.gatewayFile });
    assert.ok(loaded.ok);
    const admin = await QueueAdmin.open({ redisUrl: redis.url, gateway: loaded.config.gateway, dataDir: loaded.dataDir! });
    const logger = pino({ level: 'silent' });
    const config = () => ({ fqdn: 'mx', connectors: [] });
    const common = { listen: { address: '127.0.0.1', port: 0 }, admin, logger, config };
    const ro = await startOpsHttp({ ...common, token: TOKEN, allowWrite: false, metrics: new GatewayMetrics({ queue: admin, processMetrics: false }) });
    const off = await startOpsHttp({ ...common, token: null, allowWrite: true, metrics: new GatewayMetrics({ queue: admin, processMetrics: false }) });
    try {
      const fragment = await (await fetch(`${ro.url}/fragment`, { headers: auth })).text();
      assert.match(fragment, /<table id="queues">/);
      assert.doesNotMatch(fragment, /<button/);
      const post = await fetch(`${ro.url}/api/suspend`, { method: 'POST', headers: { ...auth, 'x-mailgw-action': '1' }, body: '{"hop":"mx:x.test"}' });
      assert.equal(post.status, 403);
      assert.deepEqual(await admin.suspended(), []);
      const offPage = await fetch(`${off.url}/`, { headers: auth });
      assert.equal(offPage.status, 404);
      assert.match(await offPage.text(), /the dashboard is off: set http\.token/);
      assert.equal((await fetch(`${off.url}/metrics`)).status, 200);
    } finally {
      await ro.close();
      await off.close();
      await admin.close();
    }
  });

  it('/healthz fails while Redis is down and recovers when it is back', async () => {
    const ok = await fetch(`${base}/healthz`);
    assert.equal(ok.status, 200);
    const healthy = (await ok.json()) as Record<string, unknown>;
    assert.equal(healthy.redis, 'up');
    // The supervisor sums its worker processes' figures.
    assert.equal(typeof healthy.deliveriesInProgress, 'number');
    assert.equal(healthy.deliveriesWaitingForMemory, 0);
    assert.equal(healthy.crowdedNextHops, 0);
    await redis.kill('SIGKILL');
    const down = await fetch(`${base}/healthz`);
    assert.equal(down.status, 503);
    const body = (await down.json()) as Record<string, unknown>;
    assert.deepEqual([body.status, body.redis], ['fail', 'down']);
    const notReady = await fetch(`${base}/readyz`);
    assert.equal(notReady.status, 503);
    const nr = (await notReady.json()) as Record<string, unknown>;
    assert.deepEqual([nr.status, nr.redis], ['not ready', 'down']);
    assert.match(String(nr.why), /^Redis does not answer: /);
    await eventually(async () => (await metricsText()).includes('mailgw_redis_up{role="gateway"} 0\n'), 'mailgw_redis_up{role="gateway"} 0');
    await redis.restart();
    await eventually(async () => (await fetch(`${base}/healthz`)).status === 200, '/healthz to recover');
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready', redis: 'up', backPressure: 'normal', backPressureReason: (await (await fetch(`${base}/healthz`)).json() as Record<string, unknown>).backPressureReason });
  });
});
