// The small pure parts: reload scope, dashboard rendering, token handling, metrics counting.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { compileRoutes, gatewaySchema, routeConnectors, type GatewayConfig } from '@mailgw/config';
import { newQueueId, queueIdTimestamp } from '@mailgw/queue';
import { readableHop, renderFragment, type DashboardView } from '../src/dashboard.js';
import { presentedToken, tokenMatches } from '../src/http-auth.js';
import { GatewayMetrics } from '../src/metrics.js';
import { restartOnlyChanges } from '../src/reload-scope.js';

const gw = (extra: Record<string, unknown> = {}): GatewayConfig => {
  const g = gatewaySchema.parse({ acceptedDomains: [{ domain: 'contoso.test' }], ...extra });
  const routes = compileRoutes(g.routes, { file: 'gateway.yaml', baseDir: '/', secrets: 'resolve', env: {} });
  assert.ok(routes.ok);
  return { ...g, fqdn: 'mx.contoso.test', recipients: null, recipientsFromDirectory: false, directory: null, bounceVerification: undefined, users: [], defaultDomain: 'contoso.test', routes: routes.routes, sendConnectors: routeConnectors(routes.routes) };
};

test('restartOnlyChanges: routes and retry timing apply live; Redis, dataDir, http and worker sizing do not', () => {
  const a = gw({ http: {}, queue: { messageRetryInterval: '15m' } });
  assert.deepEqual(restartOnlyChanges(a, gw({ http: {}, queue: { messageRetryInterval: '5m' }, routes: [{ domains: ['*'], to: 'mx' }] })), []);
  assert.deepEqual(
    restartOnlyChanges(a, gw({ redis: { prefix: '{x}', waitForReplicas: 1 }, dataDir: './other', http: { allowWrite: true }, queue: { workerConcurrency: 5, messageRetryInterval: '15m' } })),
    ['redis.prefix', 'redis.waitForReplicas', 'dataDir', 'http', 'queue.workerConcurrency'],
  );
  // The TLS-RPT counters and daily run are set up when the workers start.
  assert.deepEqual(restartOnlyChanges(a, gw({ http: {}, queue: { messageRetryInterval: '15m' }, tlsReports: { organizationName: 'C', contactInfo: 'p@c.test' } })), ['tlsReports']);
  // The content filters are built when the listeners start: the attachment filter too.
  assert.deepEqual(restartOnlyChanges(a, gw({ http: {}, queue: { messageRetryInterval: '15m' }, attachmentFilter: { action: 'Strip' } })), ['attachmentFilter']);
});

const view = (allowWrite: boolean): DashboardView => ({
  fqdn: 'mx',
  allowWrite,
  now: 0,
  processes: [{ role: 'worker', host: 'h<1>', pid: 7, version: '0.1.0', startedAt: -120_000, at: -5_000, deliveriesInProgress: 2 }],
  connectors: [{ name: 'A<b>', enabled: true, usage: 'Custom', bindings: ['0.0.0.0:25'], counters: { connections: 3, accepted: 2, rejected: 1, relayDenied: 4, authFailures: 0 } }],
  queue: { redisUp: true, error: null, counts: { delayed: 1 }, poison: 0, at: 0, hops: [{ hop: 'smtp://"x"', connector: 'routes[0]', status: 'Retry', messages: 1, recipients: 1, oldest: 0, nextRetry: 1000, lastError: '<script>', queueIds: ['Q'] }] },
});

test('dashboard: escapes everything it shows; buttons only with write access', () => {
  const rw = renderFragment(view(true));
  assert.ok(rw.includes('A&lt;b&gt;') && rw.includes('&lt;script&gt;') && rw.includes('data-hop="smtp://&quot;x&quot;"'));
  assert.ok(!rw.includes('<script>') && !rw.includes('A<b>'));
  assert.match(rw, /<button type="button" data-action="retry" data-hop=/);
  assert.match(rw, /<td class="n">3<\/td><td class="n">2<\/td><td class="n">1<\/td><td class="n">4<\/td>/);
  assert.doesNotMatch(renderFragment(view(false)), /<button/);
  const down = renderFragment({ ...view(false), queue: { ...view(false).queue, redisUp: false, error: 'ECONNREFUSED' } });
  assert.match(down, /Redis is not reachable: ECONNREFUSED/);
  // The process list: escaped, with uptime and the age of the last heartbeat.
  assert.match(rw, /<tr data-process="h&lt;1&gt;:7"><td>h&lt;1&gt;<\/td><td>7<\/td><td>worker<\/td><td>0\.1\.0<\/td><td>2m<\/td><td class="n">—<\/td><td class="n">2<\/td><td>—<\/td><td>5s ago<\/td><\/tr>/);
  assert.match(renderFragment({ ...view(false), processes: null }), /The process list is not available/);
  // A worker whose deliveries wait for room within queue.workerMessageBytes says so; none waiting, nothing more.
  const waiting = renderFragment({ ...view(false), processes: [{ role: 'worker', host: 'w1', pid: 8, version: '0.1.0', startedAt: -60_000, at: -1_000, deliveriesInProgress: 100, deliveriesWaitingForMemory: 37 }] });
  assert.match(waiting, /<td class="n">100 <span class="bad" title="waiting for room within queue\.workerMessageBytes">\(37 waiting for memory\)<\/span><\/td>/);
  assert.doesNotMatch(renderFragment({ ...view(false), processes: [{ role: 'worker', host: 'w1', pid: 8, version: '0.1.0', startedAt: -60_000, at: -1_000, deliveriesInProgress: 100, deliveriesWaitingForMemory: 0 }] }), /waiting for memory/);
  // A worker sending deliveries back for their turn at slow next hops says how many next hops.
  const slow = (n: number) => renderFragment({ ...view(false), processes: [{ role: 'worker', host: 'w1', pid: 8, version: '0.1.0', startedAt: -60_000, at: -1_000, deliveriesInProgress: 40, deliveriesWaitingForMemory: 0, crowdedNextHops: n }] });
  assert.match(slow(1), /<td class="n">40 <span class="bad" title="next hops so slow that deliveries for them go back to the queue, unread, until their turn">\(1 slow next hop\)<\/span><\/td>/);
  assert.match(slow(2), /\(2 slow next hops\)/);
  assert.doesNotMatch(slow(0), /slow next hop/);
});

test('dashboard: back pressure from the listeners\' heartbeats, as a banner (the highest level, who, why) and per process', () => {
  const listener = (pid: number, level: 'normal' | 'medium' | 'high', reason: string) => ({ role: 'listener' as const, host: 'mx1', pid, version: '0.1.0', startedAt: -60_000, at: -1_000, connections: 0, backPressure: { level, reason } });
  const calm = renderFragment({ ...view(false), processes: [listener(1, 'normal', 'below mediumPercent 80%')] });
  assert.doesNotMatch(calm, /id="back-pressure"/);
  assert.match(calm, /<tr data-process="mx1:1">.*<td>normal<\/td><td>1s ago<\/td><\/tr>/);
  const html = renderFragment({ ...view(false), processes: [listener(1, 'medium', 'memory <80%>'), listener(2, 'high', 'the disk under /var/lib/mailgw is 96.0% full'), listener(3, 'normal', 'fine')] });
  assert.match(html, /^<p id="back-pressure" class="bad">Back pressure high: all new mail is refused \(452 4\.3\.1\) by 2 listener processes \(mx1:1, mx1:2\)\. the disk under \/var\/lib\/mailgw is 96\.0% full\.<\/p>/);
  assert.match(html, /<tr data-process="mx1:1">.*<td class="bad" title="memory &lt;80%&gt;">medium<\/td>/);
  const medium = renderFragment({ ...view(false), processes: [listener(4, 'medium', 'memory 81%')] });
  assert.match(medium, /Back pressure medium: mail from anonymous senders is refused \(452 4\.3\.1\) by 1 listener process \(mx1:4\)\. memory 81%\./);
});

test('dashboard: MX next hops of IDN domains read in U-labels; the buttons keep the key (A-labels)', () => {
  assert.equal(readableHop('mx:xn--bcher-kva.test'), 'mx:bücher.test');
  assert.equal(readableHop('send:Outbound:mx:xn--bcher-kva.test'), 'send:Outbound:mx:bücher.test');
  for (const same of ['mx:xn--zz.test', 'mx:fabrikam.test', 'send:Outbound', 'smtp://127.0.0.1:25', 'Unreachable']) assert.equal(readableHop(same), same);
  const idn = { hop: 'send:Out<1>:mx:xn--bcher-kva.test', connector: 'Out<1>', status: 'Retry' as const, messages: 1, recipients: 1, oldest: 0, nextRetry: 1000, lastError: null, queueIds: ['Q'] };
  const html = renderFragment({ ...view(true), queue: { ...view(true).queue, hops: [idn] } });
  assert.match(html, /<tr data-hop="send:Out&lt;1&gt;:mx:xn--bcher-kva\.test"><td title="send:Out&lt;1&gt;:mx:xn--bcher-kva\.test">send:Out&lt;1&gt;:mx:bücher\.test<\/td>/);
  assert.match(html, /data-action="suspend" data-hop="send:Out&lt;1&gt;:mx:xn--bcher-kva\.test"/);
});

test('token: Bearer header or cookie, compared whole', () => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  assert.equal(presentedToken(req({ authorization: 'Bearer abc' })), 'abc');
  assert.equal(presentedToken(req({ cookie: 'x=1; mailgw_token=s%20t' })), 's t');
  assert.equal(presentedToken(req({})), null);
  assert.ok(tokenMatches('0123456789abcdef', '0123456789abcdef'));
  assert.ok(!tokenMatches('0123456789abcde', '0123456789abcdef'));
  assert.ok(!tokenMatches(null, '0123456789abcdef'));
});

test('metrics: listener events and tracking events become counters and a latency histogram', async () => {
  const m = new GatewayMetrics({ processMetrics: false });
  m.observeListener({ type: 'connection', connector: 'Default', clientIP: '1.2.3.4', result: 'quit' });
  m.observeListener({ type: 'connection', connector: null, clientIP: '1.2.3.4', result: 'refused:blocked-ip' });
  m.observeListener({ type: 'refused', connector: 'Default', reason: 'relay-denied' });
  m.observeListener({ type: 'refused', connector: 'Default', reason: 'user-unknown' });
  m.observeListener({ type: 'message-rejected', connector: 'Default', reason: 'hop-count' });
  m.observeListener({ type: 'auth-failure', connector: 'Client', clientIP: '1.2.3.4', user: 'x' });
  m.observeListener({ type: 'journal-report', connector: 'Default', to: 'journal@archive.test', rules: ['Everything', 'Outside'] });
  m.observeListener({ type: 'journal-report', connector: 'Default', to: 'hold@archive.test', rules: ['Everything'] });
  m.observeListener({ type: 'pickup-file', result: 'queued', reason: '' });
  m.observeListener({ type: 'pickup-file', result: 'queued', reason: '' });
  m.observeListener({ type: 'pickup-file', result: 'bad', reason: 'pickup-no-sender' });
  // A queue id made 90 s before "now": the latency is 90 s.
  const id = newQueueId();
  const now = queueIdTimestamp(id) + 90_000;
  m.observeTracking({ eventId: 'SEND', source: 'SMTP', internalMessageId: id, messageId: '<m>', senderAddress: 'a@b', recipientAddress: ['x@y', 'z@y'] }, now);
  m.observeTracking({ eventId: 'DSN', source: 'DSN', internalMessageId: id, messageId: '<m>', senderAddress: 'a@b', recipientAddress: ['x@y'], sourceContext: 'failed' }, now);
  const text = await m.registry.metrics();
  for (const line of [
    'mailgw_smtp_connections_total{connector="Default",result="quit"} 1',
    'mailgw_smtp_connections_total{connector="(none)",result="refused:blocked-ip"} 1',
    'mailgw_smtp_refusals_total{connector="Default",reason="relay-denied"} 1',
    'mailgw_journal_reports_total{rule="Everything"} 2',
    'mailgw_journal_reports_total{rule="Outside"} 1',
    'mailgw_pickup_files_total{result="queued",reason=""} 2',
    'mailgw_pickup_files_total{result="bad",reason="pickup-no-sender"} 1',
    'mailgw_smtp_relay_denied_total{connector="Default"} 1',
    'mailgw_smtp_messages_total{connector="Default",result="rejected",reason="hop-count"} 1',
    'mailgw_smtp_auth_failures_total{connector="Client"} 1',
    'mailgw_delivery_recipients_total{event="SEND"} 2',
    'mailgw_delivery_latency_seconds_bucket{le="60",event="SEND"} 0',
    'mailgw_delivery_latency_seconds_bucket{le="300",event="SEND"} 2',
    'mailgw_delivery_latency_seconds_sum{event="SEND"} 180',
    'mailgw_dsn_sent_total{kind="failed"} 1',
  ]) assert.ok(text.includes(`${line}\n`), `missing ${line} in\n${text}`);
  assert.deepEqual(m.connectorCounters('Default'), { connections: 1, accepted: 0, rejected: 1, relayDenied: 1, authFailures: 0 });
});
