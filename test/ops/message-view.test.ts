// The dashboard's message view over a running `mailgw start` and real Redis, in headless
// Chromium: the search by sender, recipient and queue id finds exactly the matching queued
// messages; a deferred message's timeline shows its RECEIVE, SUBMIT and DEFER events; bulk
// "Remove with NDR" asks in the page, then removes exactly the matching messages and sends
// their NDRs; a one-message action needs no confirmation; a stale count is refused; a read-only
// dashboard (another machine's, with its own dataDir: the timeline comes from Redis) shows no
// action buttons. Screenshot: test-results/message-view.png.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadConfig } from '@mailgw/config/load';
import { GatewayMetrics, QueueAdmin, startOpsHttp } from '@mailgw/ops';
import { freePort } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { startFarSide, type FarSide } from '../worker/helpers/far-side.js';
import { eventually, message } from '../worker/helpers/gateway.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from './helpers/config-dir.js';
import { startGatewayProcess, type GatewayProcess } from './helpers/gateway-process.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'test-token-messages-0123';
const PHISHED = 'phished@example.net';
const OTHER = 'keep@example.net';
const auth = { authorization: `Bearer ${TOKEN}` };

let redis: TestRedis;
let cfg: ConfigDir;
let far: FarSide;
let gw: GatewayProcess;
let admin: QueueAdmin;
let browser: Browser;
let base: string;
let smtpPort: number;
/** Queue ids of the phished account's messages and of the other sender's. */
let phishedIds: string[];
let otherId: string;

async function send(from: string, to: string, subject: string): Promise<void> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port: smtpPort });
  try {
    await c.ehlo();
    const t = await c.transaction(from, [to], message(subject));
    assert.equal(t.end?.code, 250, t.end?.last);
  } finally {
    await c.quit();
  }
}

async function signedIn(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  assert.equal((await page.goto(`${base}/?token=${TOKEN}`))?.status(), 200);
  return page;
}

async function search(page: Page, fields: Record<string, string>): Promise<string[]> {
  assert.equal((await page.goto(`${base}/messages`))?.status(), 200);
  for (const [name, value] of Object.entries(fields)) await page.locator(`#message-search input[name="${name}"]`).fill(value);
  await Promise.all([page.waitForURL(/\/messages\?/), page.locator('#message-search button[type="submit"]').click()]);
  return page.locator('#messages tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id') ?? ''));
}

const sorted = (xs: readonly string[]) => [...xs].sort();

before(async () => {
  redis = await startRedis();
  // Every fabrikam.test recipient is deferred: the messages stay queued (Retry).
  far = await startFarSide({ rcpt: (a) => (a.endsWith('@fabrikam.test') ? '451 4.2.0 Try again later' : null) });
  smtpPort = await freePort();
  const httpPort = await freePort();
  cfg = makeConfigDir('mailgw-msgview-');
  cfg.writeGateway(
    [
      'fqdn: mx.msgview.test',
      'dataDir: ./var',
      ACCEPTED,
      'routes:',
      '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }',
      `  - { domains: ["*"], to: "smtp://127.0.0.1:${far.port}" }`,
      'queue: { transientRetryInterval: 1h, messageRetryInterval: 1h, outboundConnectionFailureRetryInterval: 1h, drainTimeout: 3s }',
      `http: { listen: "127.0.0.1:${httpPort}", token: "${TOKEN}", allowWrite: true }`,
      '',
    ].join('\n'),
  );
  cfg.writeConnector('10-default.yaml', `name: Default\nusage: Internet\nbindings: ["127.0.0.1:${smtpPort}"]\ntarpitInterval: 0\n`);
  gw = await startGatewayProcess(cfg.gatewayFile, { REDIS_URL: redis.url });
  base = `http://127.0.0.1:${httpPort}`;
  const loaded = loadConfig({ configPath: cfg.gatewayFile });
  assert.ok(loaded.ok);
  admin = await QueueAdmin.open({ redisUrl: redis.url, gateway: loaded.config.gateway, dataDir: loaded.dataDir! });

  for (let i = 1; i <= 3; i++) await send(PHISHED, `victim${i}@fabrikam.test`, `phish ${i}`);
  await send(OTHER, 'colleague@fabrikam.test', 'real mail');
  // Each tried once and deferred.
  const retry = await eventually(async () => {
    const r = await admin.select({ status: 'Retry' });
    return r.matched === 4 ? r : null;
  }, 'four deferred messages in the queue');
  phishedIds = retry.rows.filter((r) => r.from === PHISHED).map((r) => r.id);
  otherId = retry.rows.find((r) => r.from === OTHER)!.id;
  assert.equal(phishedIds.length, 3);
  if (existsSync(CHROMIUM)) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }
});

after(async () => {
  await browser?.close();
  await admin?.close();
  const code = await gw?.stop();
  await far?.close();
  await redis?.stop();
  cfg?.remove();
  assert.equal(code, 0, gw?.output().slice(-2000));
});

const noChromium = !existsSync(CHROMIUM) && `${CHROMIUM} is not installed`;

describe('dashboard message view', () => {
  it('finds queued messages by sender, recipient and queue id, with their columns', { skip: noChromium }, async () => {
    const page = await signedIn();
    try {
      await page.locator('nav a[href="messages"]').click();
      await page.locator('#message-search').waitFor();
      assert.deepEqual(sorted(await search(page, { sender: PHISHED })), sorted(phishedIds));
      assert.equal(await page.locator('#matched').getAttribute('data-matched'), '3');
      assert.deepEqual(sorted(await search(page, { sender: '*@example.net' })), sorted([...phishedIds, otherId]));
      assert.deepEqual(await search(page, { recipient: 'colleague@fabrikam.test' }), [otherId]);
      const cells = await page.locator(`#messages tr[data-id="${otherId}"] td`).allTextContents();
      assert.equal(cells[1], `<${OTHER}>`);
      assert.equal(cells[2], 'colleague@fabrikam.test');
      assert.match(cells[3]!, /^\d+ B$/);
      assert.equal(cells[5], 'Retry');
      assert.match(cells[6]!, /^451 4\.2\.0 Try again later/);
      assert.deepEqual(await search(page, { id: phishedIds[1]! }), [phishedIds[1]]);
      assert.deepEqual(await search(page, { sender: 'nobody@example.net' }), []);
      assert.equal(await page.locator('#messages tbody').textContent(), 'No message matches.');
      // Escaped, not interpreted: the search text comes back as text.
      await search(page, { sender: '<b>x</b>"' });
      assert.equal(await page.locator('#message-search input[name="sender"]').inputValue(), '<b>x</b>"');
      assert.equal(await page.locator('#content b').count(), 0);
    } finally {
      await page.close();
    }
  });

  it('shows a deferred message\'s tracking history as a timeline (RECEIVE, SUBMIT, DEFER)', { skip: noChromium }, async () => {
    const page = await signedIn();
    try {
      await search(page, { sender: PHISHED });
      await page.locator(`#messages tr[data-id="${phishedIds[0]}"] a`).click();
      await page.locator('#timeline').waitFor();
      const events = await page.locator('#timeline li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-event')));
      assert.deepEqual(events.slice(0, 2), ['RECEIVE', 'SUBMIT']);
      assert.ok(events.includes('DEFER'), events.join(','));
      const defer = await page.locator('#timeline li[data-event="DEFER"]').first().textContent();
      assert.match(defer ?? '', /victim1@fabrikam\.test.*451 4\.2\.0/);
      // Above it, the recipients as the queue holds them and the TLS policy of the hop's last attempt.
      const rcpt = await page.locator('#recipients tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
      assert.deepEqual(rcpt.map((r) => r.slice(0, 4)), [['victim1@fabrikam.test', 'pending', '1', `smtp://127.0.0.1:${far.port}`]]);
      assert.match(rcpt[0]![4] ?? '', /^451 4\.2\.0 /);
      assert.equal(await page.locator('#hop-tls li').getAttribute('data-policy'), 'opportunistic');
      mkdirSync(new URL('../../test-results/', import.meta.url), { recursive: true });
      await page.screenshot({ path: new URL('../../test-results/message-view.png', import.meta.url).pathname, fullPage: true });
    } finally {
      await page.close();
    }
  });

  it('suspends one message at once, without a confirmation', { skip: noChromium }, async () => {
    const page = await signedIn();
    try {
      await search(page, { id: otherId });
      await page.locator('#message-actions button[data-op="suspend"]').click();
      await page.locator('#status', { hasText: 'Suspended 1 message' }).waitFor();
      assert.deepEqual((await admin.select({ status: 'Suspended' })).ids, [otherId]);
      // The status line comes first; the list is fetched again after it.
      const cell = page.locator(`#messages tr[data-id="${otherId}"] td`).nth(5);
      await cell.filter({ hasText: 'Suspended' }).waitFor({ timeout: 10_000 }).catch(() => undefined);
      assert.equal(await cell.textContent(), 'Suspended');
    } finally {
      await page.close();
    }
  });

  it('/metrics of mailgw start has the gauges the shipped alerts use (live workers, oldest message, delayNotificationTimeout)', async () => {
    const text = await eventually(async () => {
      const t = await (await fetch(`${base}/metrics`)).text();
      return /^mailgw_processes_live\{role="worker"\} [1-9]/m.test(t) ? t : null;
    }, 'a live worker in mailgw_processes_live');
    assert.match(text, /^mailgw_queue_delay_notification_timeout_seconds\{role="gateway"\} 14400$/m);
    const oldest = /^mailgw_queue_oldest_message_age_seconds\{role="gateway"\} (\S+)$/m.exec(text);
    assert.ok(oldest && Number(oldest[1]) > 0, `the deferred messages are counted: ${oldest?.[0]}`);
  });

  it('refuses a bulk action when the matching messages are no longer as many as confirmed', async () => {
    const r = await fetch(`${base}/api/messages`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'x-mailgw-action': '1' },
      body: JSON.stringify({ op: 'remove', search: { sender: PHISHED }, expect: 2 }),
    });
    assert.equal(r.status, 409);
    assert.match(((await r.json()) as { error: string }).error, /3 messages match now, not 2/);
    const none = await fetch(`${base}/api/messages`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'x-mailgw-action': '1' },
      body: JSON.stringify({ op: 'remove', search: {}, expect: 4 }),
    });
    assert.equal(none.status, 400);
    assert.equal((await admin.select({ sender: '*' })).matched, 4);
  });

  it('a queue id shows its recipients and each next hop\'s TLS policy (as mailgw queue show); an unknown id says so', async () => {
    const page = async (query: string) => {
      const r = await fetch(`${base}/messages?${query}&fragment=1`, { headers: auth });
      assert.equal(r.status, 200);
      return r.text();
    };
    const html = await page(`id=${encodeURIComponent(otherId)}`);
    const row = /<table id="recipients">.*?<tbody>(.*?)<\/tbody>/s.exec(html)?.[1] ?? '';
    assert.match(row, new RegExp(`^<tr data-address="colleague@fabrikam\\.test"><td>colleague@fabrikam\\.test</td><td class="status-pending">pending</td><td class="n">1</td><td>smtp://127\\.0\\.0\\.1:${far.port}</td><td>451 4\\.2\\.0 `), html);
    const tls = /<ul id="hop-tls">(.*?)<\/ul>/s.exec(html)?.[1] ?? '';
    assert.match(tls, new RegExp(`<li data-hop="smtp://127\\.0\\.0\\.1:${far.port}" data-policy="opportunistic"><b>smtp://127\\.0\\.0\\.1:${far.port}</b>: opportunistic \\(127\\.0\\.0\\.1\\), <time>\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ</time>`), html);
    assert.match(tls, /why: routes\[1\] does not require TLS, no DANE records: STARTTLS when offered, else plain text/);
    // Markup in a search value is escaped, and an id no message has is said to be missing.
    const missing = await page('id=%3Cb%3Enope');
    assert.match(missing, /<h2>Recipients of &lt;b&gt;nope<\/h2><p id="detail-missing">No queued message has this id/);
  });

  it('bulk "Remove with NDR" asks in the page, then removes exactly the matching messages and sends their NDRs', { skip: noChromium }, async () => {
    const page = await signedIn();
    try {
      await search(page, { sender: PHISHED });
      await page.locator('#message-actions button[data-op="remove-ndr"]').click();
      // Nothing happens before the confirmation.
      await page.locator('#confirm:not([hidden])').waitFor();
      assert.match((await page.locator('#confirm').textContent()) ?? '', /3 messages\. Are you sure\?/);
      assert.equal((await admin.select({ sender: PHISHED })).matched, 3);
      await page.locator('#confirm-no').click();
      assert.equal(await page.locator('#confirm').isHidden(), true);
      await page.locator('#message-actions button[data-op="remove-ndr"]').click();
      await page.locator('#confirm-yes').click();
      await page.locator('#status', { hasText: 'Removed 3 messages, 3 NDRs sent' }).waitFor();
      // The page fetches the list again after the status line: wait for it.
      await page.locator('#messages tbody', { hasText: 'No message matches.' }).waitFor({ timeout: 10_000 });
      assert.equal(await page.locator('#messages tbody').textContent(), 'No message matches.');
    } finally {
      await page.close();
    }
    // Only the other sender's message is left (besides the NDRs, from <>, on their way); each
    // phished message's sender got an NDR.
    assert.equal((await admin.select({ sender: PHISHED })).matched, 0);
    assert.deepEqual((await admin.select({ sender: '*@*' })).ids, [otherId]);
    const ndrs = await eventually(() => {
      const got = far.messages.filter((m) => m.mailFrom === '' && m.rcptTo.includes(PHISHED));
      return got.length >= 3 ? got : null;
    }, 'three NDRs to the phished sender at the far side');
    assert.equal(ndrs.length, 3);
    assert.ok(!far.messages.some((m) => m.mailFrom === '' && m.rcptTo.includes(OTHER)), 'no NDR for the message left alone');
  });

  it('a read-only dashboard on another machine (its own, empty dataDir) lists messages and the timeline from Redis, without action buttons', { skip: noChromium }, async () => {
    const loaded = loadConfig({ configPath: cfg.gatewayFile });
    assert.ok(loaded.ok);
    // No tracking file of the gateway under this dataDir: the timeline can only come from Redis.
    const elsewhere = mkdtempSync(path.join(os.tmpdir(), 'mailgw-msgview-other-'));
    const other = await QueueAdmin.open({ redisUrl: redis.url, gateway: loaded.config.gateway, dataDir: elsewhere });
    const ro = await startOpsHttp({
      listen: { address: '127.0.0.1', port: 0 },
      admin: other,
      logger: pino({ level: 'silent' }),
      config: () => ({ fqdn: 'mx.msgview.test', connectors: [] }),
      token: TOKEN,
      allowWrite: false,
      metrics: new GatewayMetrics({ queue: other, processMetrics: false }),
    });
    const page = await browser.newPage();
    try {
      assert.equal((await page.goto(`${ro.url}/?token=${TOKEN}`))?.status(), 200);
      assert.equal((await page.goto(`${ro.url}/messages?sender=${encodeURIComponent(OTHER)}`))?.status(), 200);
      assert.deepEqual(await page.locator('#messages tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id'))), [otherId]);
      assert.equal(await page.locator('button[data-action]').count(), 0);
      assert.equal(await page.locator('#message-actions').count(), 0);
      const post = await fetch(`${ro.url}/api/messages`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', 'x-mailgw-action': '1' },
        body: JSON.stringify({ op: 'remove', search: { sender: OTHER }, expect: 1 }),
      });
      assert.equal(post.status, 403);
      assert.deepEqual((await admin.select({ sender: '*@*' })).ids, [otherId]);
      assert.equal((await page.goto(`${ro.url}/messages?id=${otherId}`))?.status(), 200);
      const events = await page.locator('#timeline li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-event')));
      assert.deepEqual(events.slice(0, 2), ['RECEIVE', 'SUBMIT']);
      assert.ok(events.includes('DEFER'), events.join(','));
      assert.equal(await page.locator('button[data-action]').count(), 0);
    } finally {
      await page.close();
      await ro.close();
      await other.close();
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
