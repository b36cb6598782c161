// Property tests: whatever arrives on the wire or in a config file, the engine never throws,
// and no address is both "local" and "relayed".
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { buildConfig } from '@mailgw/config';
import { parse } from 'yaml';
import { connect, parseEnvelopeAddress, rcpt } from '../src/index.js';
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
      const onDefault = rcpt(p, anon, { recipient: a, acceptedSoFar: 0 });
      const onRelay = rcpt(p, relay, { recipient: a, acceptedSoFar: 0 });
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
