// Property tests: whatever arrives on the wire or in a config file, the engine never throws,
// and no address is both "local" and "relayed".
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { buildConfig } from '@mailgw/config';
import { parse } from 'yaml';
import { NEW_TRANSACTION, connect, parseEnvelopeAddress, rcpt } from '../src/index.js';
import { policy } from './fixture.js';

const p = policy(
  { acceptedDomains: [{ domain: 'contoso.test', default: true }, { domain: '*.fabrikam.test', type: 'InternalRelay' }] },
  [
    { name: 'Default', usage: 'Internet', bindings: ['0.0.0.0:25'] },
    { name: 'Relay', bindings: ['0.0.0.0:25'], remoteIPRanges: ['10.0.0.0/24'], permissionGroups: ['AnonymousUsers'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Accept-Any-Recipient'] }] },
  ],
);
const anon = connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: '203.0.113.1' }).session!;
const relay = connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: '10.0.0.1' }).session!;

const piece = fc.oneof(
  fc.constantFrom('user', 'contoso.test', 'CONTOSO.TEST.', 'other.test', 'fabrikam.test', 'a.fabrikam.test', '[127.0.0.1]', '[IPv6:::1]', 'xn--cntoso-9ua.test', 'bücher.test', ''),
  fc.string({ maxLength: 12 }),
);
const sep = fc.constantFrom('@', '%', '!', '"', ':', ',', '.', '\\', '\u0000', '\r\n', ' ', '<', '>', '');
const address = fc.array(fc.tuple(piece, sep), { maxLength: 6 }).map((parts) => parts.map(([a, b]) => a + b).join(''));

it('the address parser never throws, and a parsed address is either local or needs relay', () => {
  fc.assert(
    fc.property(address, (a) => {
      const parsed = parseEnvelopeAddress(a);
      const onDefault = rcpt(p, anon, { recipient: a, transaction: NEW_TRANSACTION });
      const onRelay = rcpt(p, relay, { recipient: a, transaction: NEW_TRANSACTION });
      if (!parsed.ok) {
        assert.equal(onDefault.decision.reply.code, 501);
        return;
      }
      const local = onDefault.decision.verdict === 'accept';
      const relayed = onRelay.decision.reason.code === 'relay';
      assert.ok(!(local && relayed), `${JSON.stringify(a)} is both local and relayed`);
      // Anything the Default connector accepts must route only to accepted domains.
      if (local) assert.equal(onDefault.decision.reason.code, 'accepted-domain', JSON.stringify(a));
    }),
    { numRuns: 3000 },
  );
});

it('a hop hidden in the local part counts as ours only when written exactly as an accepted domain', () => {
  // The next server reads a percent-hack or bang-path hop as written; IDNA mapping (fullwidth
  // letters, long s, soft hyphen, ideographic full stop, …) must never make one look local.
  // An accepted domain with every character possibly swapped for a look-alike IDNA maps back.
  const fullwidth = (ch: string) => String.fromCharCode(ch.charCodeAt(0) + 0xfee0);
  const variants = (ch: string) => [ch, ch.toUpperCase(), fullwidth(ch), `${ch}\u00ad`, ...(ch === 's' ? ['\u017f'] : []), ...(ch === 'o' ? ['\u043e'] : []), ...(ch === '.' ? ['\u3002'] : [])];
  const lookAlike = (domain: string) => fc.tuple(...domain.split('').map((ch) => fc.constantFrom(...variants(ch)))).map((a) => a.join(''));
  const hop = fc.tuple(fc.oneof(lookAlike('contoso.test'), lookAlike('fabrikam.test')), fc.constantFrom('', '.')).map(([h, dot]) => h + dot);
  const shape = fc.constantFrom((h: string) => `user%${h}@contoso.test`, (h: string) => `${h}!user@contoso.test`, (h: string) => `"user%${h}"@contoso.test`);
  const literallyOurs = (h: string) => {
    const d = h.toLowerCase().replace(/\.$/, '');
    return /^[\x21-\x7e]+$/.test(h) && (d === 'contoso.test' || d === 'fabrikam.test' || d.endsWith('.fabrikam.test'));
  };
  fc.assert(
    fc.property(hop, shape, (h, make) => {
      const a = make(h);
      const d = rcpt(p, anon, { recipient: a, transaction: NEW_TRANSACTION }).decision;
      if (d.verdict === 'accept') assert.ok(literallyOurs(h), `${JSON.stringify(a)} accepted on Default, but its hop ${JSON.stringify(h)} is not written as an accepted domain`);
    }),
    { numRuns: 3000 },
  );
});

it('the connector-file parser never throws, whatever YAML-shaped data it gets', () => {
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.constantFrom('name', 'bindings', 'remoteIPRanges', 'authMechanism', 'permissionGroups', 'permissions', 'user', 'extendedRights', 'deny', 'maxMessageSize', 'usage', 'x'), tie('v'), { maxKeys: 5 })),
  })).v;
  fc.assert(
    fc.property(value, value, (connector, gateway) => {
      const r = buildConfig({
        gatewayFile: 'gateway.yaml',
        gatewayData: gateway,
        connectorFiles: [{ file: 'connectors.d/x.yaml', data: connector }],
        readReferenced: (f) => ({ ok: false, error: 'none', file: f }),
        parseYaml: parse,
        fallbackFqdn: 'h.test',
      });
      if (!r.ok) for (const e of r.errors) assert.equal(typeof e.message, 'string');
    }),
    { numRuns: 1500 },
  );
});

it('connect never throws on arbitrary client addresses', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 40 })), (ip) => {
      const r = connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP: ip });
      assert.ok(r.decision.reply.code === 220 || r.decision.reply.code === 554);
    }),
    { numRuns: 2000 },
  );
});
