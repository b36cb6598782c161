// The message view's pure parts: the search parameters (bounded text, Exchange statuses), the
// links, and the rendering (everything escaped, action buttons only with write access, the
// confirmation data on them, the timeline in order).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSearch, renderMessagesFragment, searchHref, type MessagesView } from '../src/dashboard-messages.js';
import type { MessageRow } from '../src/message-filter.js';

const from = (o: Record<string, unknown>) => parseSearch((k) => o[k]);

test('parseSearch: trims, drops empty fields, takes a status in any case, refuses what is not text', () => {
  const s = from({ sender: ' *@contoso.com ', recipient: '', status: 'retry' });
  assert.ok(s.ok);
  assert.deepEqual(s.search, { sender: '*@contoso.com', status: 'Retry' });
  assert.deepEqual(s.filter, { sender: '*@contoso.com', recipient: undefined, status: 'Retry' });
  assert.equal(s.empty, false);
  const none = from({});
  assert.ok(none.ok && none.empty);
  assert.deepEqual(from({ status: 'Deferred' }), { ok: false, error: 'status "Deferred" is not one of Active, Ready, Retry, Suspended, Poison' });
  assert.equal(from({ sender: 42 }).ok, false);
  assert.equal(from({ id: 'x'.repeat(321) }).ok, false);
  const id = from({ id: '01M8A2Y6CDDFXA4WGMWTCS8D65' });
  assert.ok(id.ok && id.id === '01M8A2Y6CDDFXA4WGMWTCS8D65' && !id.empty);
});

test('searchHref encodes the search', () => {
  assert.equal(searchHref({}), 'messages');
  assert.equal(searchHref({ sender: 'a&b@x.test', id: 'Q1' }), 'messages?sender=a%26b%40x.test&id=Q1');
});

const row: MessageRow = {
  id: 'Q<1>',
  status: 'Retry',
  from: '"><script>alert(1)</script>@evil.test',
  recipients: ['a@fabrikam.test', 'b@fabrikam.test', 'c@fabrikam.test'],
  size: 2048,
  receivedAt: 1_000_000,
  hops: [],
  nextAttemptAt: null,
  lastError: '451 4.2.0 <try> again',
  subject: null,
  pending: [],
};

const view = (allowWrite: boolean): MessagesView => ({
  fqdn: 'mx.test',
  allowWrite,
  now: 1_000_000 + 3_720_000,
  search: { sender: '<x>' },
  result: { rows: [row], matched: 3 },
  detail: null,
  timeline: {
    id: 'Q<1>',
    events: [
      { dateTime: '2026-12-02T10:00:00.123Z', eventId: 'RECEIVE', source: 'SMTP', recipientAddress: ['a@fabrikam.test'] },
      { dateTime: '2026-12-02T10:00:01.000Z', eventId: 'DEFER', source: 'QUEUE', recipientAddress: ['a@fabrikam.test'], recipientStatus: ['451 4.2.0 <later>'] },
    ],
  },
});

test('the fragment escapes every value and shows the columns', () => {
  const html = renderMessagesFragment(view(false));
  assert.doesNotMatch(html, /<script>|<try>|<later>|Q<1>/);
  assert.match(html, /&lt;&quot;&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt;@evil\.test&gt;/);
  assert.match(html, /<td>a@fabrikam\.test, b@fabrikam\.test \+1<\/td><td class="n">2\.0 KB<\/td><td>1h2m<\/td><td class="status-retry">Retry<\/td>/);
  assert.match(html, /1 of 3 matching messages shown/);
  assert.match(html, /href="messages\?sender=%3Cx%3E&amp;id=Q%3C1%3E"/);
  assert.deepEqual([...html.matchAll(/data-event="(\w+)"/g)].map((m) => m[1]), ['RECEIVE', 'DEFER']);
  assert.match(html, /2026-12-02 10:00:00Z/);
});

type Recipient = NonNullable<Extract<MessagesView['detail'], { message: unknown }>['message']>['recipients'][number];
const recipient = (o: Partial<Recipient>): Recipient => ({ address: 'a@fabrikam.test', status: 'pending', attempts: 0, lastAttemptAt: null, lastReply: null, remoteMta: null, hop: null, connector: null, suspended: false, notify: null, ...o });

test('a queue id\'s recipients and the TLS policy per next hop: escaped, suspended hops and relays said, nothing decided before an attempt', () => {
  const html = renderMessagesFragment({
    ...view(false),
    detail: {
      id: 'Q<1>',
      message: {
        recipients: [
          recipient({ address: 'a@xn--bcher-kva.test', attempts: 2, hop: 'mx:fabrikam.test', suspended: true, lastReply: '451 4.2.0 <later>' }),
          recipient({ address: 'b@fabrikam.test', status: 'delivered', attempts: 1, remoteMta: 'mx1.fabrikam.test', lastReply: '250 2.0.0 ok' }),
        ],
        hopTls: [{ hop: 'mx:fabrikam.test', policy: 'MTA-STS enforce', detail: 'MTA-STS enforce <id 1>', reason: 'policy "x" & more', host: 'mx1.fabrikam.test', at: Date.parse('2026-12-02T10:00:01.500Z') }],
      },
    },
  });
  assert.doesNotMatch(html, /<later>|<id 1>|Q<1>/);
  const rows = [...html.matchAll(/<tr data-address="([^"]*)">(.*?)<\/tr>/g)].map((m) => [m[1], [...m[2]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => c[1])]);
  assert.deepEqual(rows, [
    ['a@xn--bcher-kva.test', ['a@bücher.test', 'pending', '2', 'mx:fabrikam.test (suspended)', '451 4.2.0 &lt;later&gt;']],
    ['b@fabrikam.test', ['b@fabrikam.test', 'delivered', '1', 'via mx1.fabrikam.test', '250 2.0.0 ok']],
  ]);
  assert.match(html, /<li data-hop="mx:fabrikam\.test" data-policy="MTA-STS enforce"><b>mx:fabrikam\.test<\/b>: MTA-STS enforce \(mx1\.fabrikam\.test\), <time>2026-12-02 10:00:01Z<\/time><br>MTA-STS enforce &lt;id 1&gt;<br><span class="why">why: policy &quot;x&quot; &amp; more<\/span><\/li>/);
  assert.ok(html.indexOf('id="recipients"') < html.indexOf('id="timeline"'), 'the recipients come before the timeline');

  const fresh = renderMessagesFragment({ ...view(false), detail: { id: 'Q2', message: { recipients: [recipient({})], hopTls: [] } } });
  assert.match(fresh, /<p id="hop-tls-none">No delivery attempted yet/);
  assert.match(renderMessagesFragment({ ...view(false), detail: { id: 'Q3', message: null } }), /<p id="detail-missing">No queued message has this id/);
  assert.match(renderMessagesFragment({ ...view(false), detail: { id: 'Q4', error: 'Connection <closed>' } }), /<p class="bad">The queue could not be read: Connection &lt;closed&gt;<\/p>/);
});

test('action buttons only with write access, each carrying the count to confirm and the search', () => {
  assert.doesNotMatch(renderMessagesFragment(view(false)), /<button/);
  const html = renderMessagesFragment(view(true));
  const ops = [...html.matchAll(/data-op="([\w-]+)" data-count="3" data-search="([^"]*)"/g)];
  assert.deepEqual(ops.map((m) => m[1]), ['remove', 'remove-ndr', 'suspend', 'resume', 'retry']);
  assert.equal(ops[0]![2], '{&quot;sender&quot;:&quot;&lt;x&gt;&quot;}');
  assert.match(html, /<div id="confirm" hidden><\/div>/);
});

test('IDN addresses read in U-labels in the list and the timeline; a label that is not punycode as it is', () => {
  const idn: MessageRow = { ...row, id: 'Q2', from: 'jörg@xn--bcher-kva.test', recipients: ['dana@xn--bcher-kva.test', 'eve@xn--zz.test', 'x@xn--bcher-kva.test'], lastError: null };
  const html = renderMessagesFragment({
    ...view(false),
    search: { recipient: 'dana@bücher.test' },
    result: { rows: [idn], matched: 1 },
    timeline: { id: 'Q2', events: [{ dateTime: '2026-12-02T10:00:00.000Z', eventId: 'DEFER', source: 'QUEUE', recipientAddress: ['dana@xn--bcher-kva.test'], recipientStatus: ['451 4.2.0 later'] }] },
  });
  assert.match(html, /<td>&lt;jörg@bücher\.test&gt;<\/td><td>dana@bücher\.test, eve@xn--zz\.test \+1<\/td>/);
  assert.match(html, /<span>source QUEUE · → dana@bücher\.test · 451 4\.2\.0 later<\/span>/);
  assert.doesNotMatch(html, /xn--bcher/);
  // The search as typed (U-labels) in the links; the queue matches it either way (addressMatcher).
  assert.match(html, /href="messages\?recipient=dana%40b%C3%BCcher\.test&amp;id=Q2"/);
});
