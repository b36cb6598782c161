import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RouteTable, groupByHop } from '@mailgw/queue';
import { parts, testGateway } from '../../../test/worker/helpers/gateway.js';

// Route targets are parsed and compiled by @mailgw/config (packages/config/test/routes.test.ts);
// the worker only matches and groups.
const routes = (list: unknown[]) => testGateway({ routes: list as never }).sendConnectors;

/** The index of the route a recipient domain leaves through (routes are shorthand send connectors). */
function routeIndex(t: RouteTable, domain: string): number {
  const c = t.select(domain).connector;
  assert.ok(c && c.origin.kind === 'route', `a route for ${domain}`);
  return c.origin.index;
}

describe('route matching and hops', () => {
  const table = new RouteTable(
    routes([
      { domains: ['contoso.test', '*.contoso.test'], to: 'maildir:/srv/mail' },
      { domains: ['fabrikam.test'], to: 'smtp://10.0.0.5:25' },
      { domains: ['*.fabrikam.test'], to: 'lmtp://10.0.0.6:24' },
      { domains: ['bücher.test'], to: 'smtp://10.0.0.7' },
      { domains: ['*'], to: 'mx' },
    ]),
  );

  test('first route by exact domain, *. wildcard (also the domain itself), then *', () => {
    assert.equal(routeIndex(table, 'contoso.test'), 0);
    assert.equal(routeIndex(table, 'eu.contoso.test'), 0);
    assert.equal(routeIndex(table, 'fabrikam.test'), 1);
    assert.equal(routeIndex(table, 'x.fabrikam.test'), 2);
    assert.equal(routeIndex(table, 'example.org'), 4);
    assert.equal(routeIndex(table, 'notcontoso.test'), 4);
  });

  test('file order wins over specificity: a * listed first takes everything', () => {
    const t = new RouteTable(routes([{ domains: ['*'], to: 'mx' }, { domains: ['contoso.test'], to: 'maildir:/m' }]));
    assert.equal(routeIndex(t, 'contoso.test'), 0);
  });

  test('IDN recipient domains are routed and addressed in ASCII', () => {
    assert.deepEqual(parts('Jörg@Bücher.test'), { local: 'Jörg', domain: 'xn--bcher-kva.test' });
    const { hops } = groupByHop([{ index: 0, ...parts('anna@bücher.test') }], table);
    assert.equal(hops[0]!.key, 'smtp://10.0.0.7:25');
    assert.equal(hops[0]!.recipients[0]!.address, 'anna@xn--bcher-kva.test');
  });

  test('recipients are grouped per next hop; mx is one hop per domain; order is kept', () => {
    const { hops, unroutable } = groupByHop(
      [
        { index: 0, ...parts('a@contoso.test') },
        { index: 1, ...parts('b@remote.example') },
        { index: 2, ...parts('c@eu.contoso.test') },
        { index: 3, ...parts('d@fabrikam.test') },
        { index: 4, ...parts('e@other.example') },
        { index: 5, ...parts('f@remote.example'), notify: ['NEVER'] },
      ],
      table,
    );
    assert.deepEqual(unroutable, []);
    assert.deepEqual(
      hops.map((h) => [h.key, h.recipients.map((r) => r.index)]),
      [
        ['maildir:/srv/mail', [0, 2]],
        ['mx:remote.example', [1, 5]],
        ['smtp://10.0.0.5:25', [3]],
        ['mx:other.example', [4]],
      ],
    );
    assert.equal(hops[1]!.domain, 'remote.example');
    assert.deepEqual(hops[1]!.recipients[1]!.notify, ['NEVER']);
  });

  test('no matching route defers (4.4.4)', () => {
    const t = new RouteTable(routes([{ domains: ['contoso.test'], to: 'maildir:/m' }]));
    const { hops, unroutable } = groupByHop([{ index: 0, ...parts('x@elsewhere.test') }, { index: 2, ...parts('ok@contoso.test') }], t);
    assert.equal(hops.length, 1);
    assert.deepEqual(unroutable.map((u) => [u.index, u.reply.enhanced, u.permanent]), [[0, '4.4.4', false]]);
  });
});
