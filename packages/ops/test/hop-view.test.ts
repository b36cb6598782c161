import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRoutes, gatewaySchema, routeConnectors } from '@mailgw/config';
import { parseReply } from '@mailgw/mail';
import { RouteTable, initialState, parseDeliveryJob, type DeliveryState } from '@mailgw/queue';
import { UNREACHABLE, hopRows, pendingHops, type QueuedMessage } from '../src/hop-view.js';

// As `mailgw queue` compiles them: passwords unresolved (NOT_SET_HERE is not set anywhere).
const compiled = compileRoutes(
  gatewaySchema.parse({
    acceptedDomains: [{ domain: 'contoso.test' }],
    routes: [
      { domains: ['contoso.test'], to: 'maildir:/srv/mail' },
      { domains: ['fabrikam.test'], to: 'smtp://10.0.0.5:25', auth: { user: 'gw', passEnv: 'NOT_SET_HERE' } },
      { domains: ['northwind.test'], to: 'mx' },
    ],
  }).routes,
  { file: 'gateway.yaml', baseDir: '/', secrets: 'unresolved' },
);
if (!compiled.ok) throw new Error('routes should compile without their secrets');
const routes = new RouteTable(routeConnectors(compiled.routes));

function msg(id: string, state: string, rcpts: string[], receivedAt: string, edit: (s: DeliveryState) => void = () => undefined): QueuedMessage {
  // A version 1 job (addresses as text): read through the upgrade, as queued mail from before v2 is.
  const job = parseDeliveryJob({
    v: 1, queueId: id, messageId: `<${id}@x>`, receivedAt, connector: 'Default', clientIP: '127.0.0.1', clientHostname: 'c', helo: 'c',
    tls: null, authUser: null, mailFrom: { address: 'a@contoso.test' }, rcptTo: rcpts.map((address) => ({ address })), bodyKey: 'k', size: 1,
  });
  const delivery = initialState(job);
  edit(delivery);
  return { id, state, job, delivery, error: null, failedReason: null };
}

const reply = (text: string) => parseReply(text)!;

test('pendingHops: the worker grouping (smtp with user, mx per domain, maildir); no route is Unreachable', () => {
  const m = msg('A', 'delayed', ['x@contoso.test', 'y@fabrikam.test', 'z@northwind.test', 'w@nowhere.test'], '2026-01-01T00:00:00Z', (s) => {
    s.recipients[0]!.status = 'delivered';
  });
  assert.deepEqual([...pendingHops(m.job!, m.delivery!, routes)], [
    [1, 'smtp://gw@10.0.0.5:25'],
    [2, 'mx:northwind.test'],
    [3, UNREACHABLE],
  ]);
});

test('hopRows: counts, oldest, next retry, last error and status per hop', () => {
  const now = Date.parse('2026-01-01T01:00:00Z');
  const rows = hopRows(
    [
      msg('A', 'delayed', ['a@fabrikam.test', 'b@fabrikam.test'], '2026-01-01T00:10:00Z', (s) => {
        s.nextAttemptAt = now + 60_000;
        s.recipients[0]!.reply = reply('451 4.2.0 older');
        s.recipients[0]!.lastAttemptAt = now - 2000;
        s.recipients[1]!.reply = reply('452 4.2.2 newer');
        s.recipients[1]!.lastAttemptAt = now - 1000;
      }),
      msg('B', 'waiting', ['c@fabrikam.test'], '2026-01-01T00:05:00Z'),
      msg('C', 'active', ['d@contoso.test'], '2026-01-01T00:30:00Z'),
      msg('D', 'failed', ['e@fabrikam.test'], '2026-01-01T00:00:00Z'),
    ],
    routes,
    new Set(['mx:northwind.test']),
    now,
  );
  assert.deepEqual(
    rows.map((r) => [r.hop, r.status, r.messages, r.recipients, r.oldest, r.nextRetry, r.lastError]),
    [
      ['smtp://gw@10.0.0.5:25', 'Retry', 2, 3, Date.parse('2026-01-01T00:05:00Z'), now, '452 4.2.2 newer'],
      ['maildir:/srv/mail', 'Active', 1, 1, Date.parse('2026-01-01T00:30:00Z'), null, null],
      ['mx:northwind.test', 'Suspended', 0, 0, null, null, null],
    ],
  );
});
