import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { RouteTable, TargetError, groupByHop, parseTarget } from '@mailgw/worker';
import { parts } from '../../../test/worker/helpers/gateway.js';
import { testGateway } from '../../../test/worker/helpers/gateway.js';

const routes = (list: unknown[]) => testGateway({ routes: list as never }).routes;

describe('route targets', () => {
  test('maildir paths are resolved against the config directory', () => {
    const [r] = routes([{ domains: ['a.test'], to: 'maildir:./var/mail' }]);
    assert.deepEqual(parseTarget(r!, '/etc/mailgw'), { kind: 'maildir', root: path.resolve('/etc/mailgw/var/mail') });
  });

  test('smtp, smtps and lmtp URLs with default ports, IPv6 hosts and credentials', () => {
    const t = (to: string, extra: object = {}) => parseTarget(routes([{ domains: ['*'], to, ...extra }])[0]!, '/');
    assert.deepEqual(t('smtp://relay.test'), { kind: 'smtp', host: 'relay.test', port: 25, secure: false, lmtp: false, requireTLS: false, verifyTLS: false, auth: null });
    assert.equal((t('smtps://relay.test') as { port: number }).port, 465);
    assert.equal((t('smtps://relay.test') as { secure: boolean }).secure, true);
    assert.equal((t('lmtp://[::1]:2424') as { host: string }).host, '::1');
    assert.equal((t('lmtp://[::1]:2424') as { lmtp: boolean }).lmtp, true);
    assert.deepEqual((t('smtp://u%40x:p%3Aw@relay.test:587') as { auth: unknown }).auth, { user: 'u@x', pass: 'p:w' });
    assert.deepEqual((t('smtp://relay.test:587', { requireTLS: true, auth: { user: 'gw', pass: 'pw' } }) as { auth: unknown; requireTLS: boolean }).auth, { user: 'gw', pass: 'pw' });
  });

  test('auth.passEnv reads the environment, and a missing variable is a start-up error', () => {
    const [r] = routes([{ domains: ['*'], to: 'smtp://relay.test:587', auth: { user: 'gw', passEnv: 'RELAY_PASS' } }]);
    assert.deepEqual((parseTarget(r!, '/', { RELAY_PASS: 's3cret' }) as { auth: unknown }).auth, { user: 'gw', pass: 's3cret' });
    assert.throws(() => parseTarget(r!, '/', {}), TargetError);
  });

  test('the schema refuses auth on maildir/mx and requireTLS on mx', () => {
    assert.throws(() => routes([{ domains: ['*'], to: 'mx', auth: { user: 'a', pass: 'b' } }]));
    assert.throws(() => routes([{ domains: ['*'], to: 'mx', requireTLS: true }]));
    assert.throws(() => routes([{ domains: ['*'], to: 'ftp://x' }]));
  });
});

describe('route matching and hops', () => {
  const table = new RouteTable(
    routes([
      { domains: ['contoso.test', '*.contoso.test'], to: 'maildir:/srv/mail' },
      { domains: ['fabrikam.test'], to: 'smtp://10.0.0.5:25' },
      { domains: ['*.fabrikam.test'], to: 'lmtp://10.0.0.6:24' },
      { domains: ['bücher.test'], to: 'smtp://10.0.0.7' },
      { domains: ['*'], to: 'mx' },
    ]),
    '/',
  );

  test('first route by exact domain, *. wildcard (also the domain itself), then *', () => {
    assert.equal(table.match('contoso.test')!.index, 0);
    assert.equal(table.match('eu.contoso.test')!.index, 0);
    assert.equal(table.match('fabrikam.test')!.index, 1);
    assert.equal(table.match('x.fabrikam.test')!.index, 2);
    assert.equal(table.match('example.org')!.index, 4);
    assert.equal(table.match('notcontoso.test')!.index, 4);
  });

  test('file order wins over specificity: a * listed first takes everything', () => {
    const t = new RouteTable(routes([{ domains: ['*'], to: 'mx' }, { domains: ['contoso.test'], to: 'maildir:/m' }]), '/');
    assert.equal(t.match('contoso.test')!.index, 0);
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
    const t = new RouteTable(routes([{ domains: ['contoso.test'], to: 'maildir:/m' }]), '/');
    const { hops, unroutable } = groupByHop([{ index: 0, ...parts('x@elsewhere.test') }, { index: 2, ...parts('ok@contoso.test') }], t);
    assert.equal(hops.length, 1);
    assert.deepEqual(unroutable.map((u) => [u.index, u.reply.enhanced, u.permanent]), [[0, '4.4.4', false]]);
  });
});
