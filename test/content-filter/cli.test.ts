// mailgw check and explain with content filters configured: check names the file and key of
// a bad milter address; explain lists the filters a session would pass through, and why.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { mailgw } from '../cli/helpers/binary.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-cf-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(path.join(dir, 'connectors.d'));
writeFileSync(path.join(dir, 'connectors.d/default.yaml'), 'name: Default\nusage: Internet\nbindings: ["0.0.0.0:25"]\n');
writeFileSync(path.join(dir, 'connectors.d/partner.yaml'), 'name: Partner\nusage: Partner\nbindings: ["0.0.0.0:25"]\nremoteIPRanges: ["192.0.2.0/24"]\npermissions: [{ user: Anonymous, extendedRights: [ms-Exch-Bypass-Anti-Spam] }]\n');
const gateway = (milters: string) => {
  writeFileSync(path.join(dir, 'gateway.yaml'), `fqdn: mx.contoso.test\nacceptedDomains: [{ domain: contoso.test }]\nrspamd: {}\nmilters:\n${milters}`);
  return ['--config', path.join(dir, 'gateway.yaml'), '--connectors', path.join(dir, 'connectors.d')];
};

it('check: a milter address Postfix would not take is an error naming gateway.yaml and milters[i].address', () => {
  const r = mailgw(['check', ...gateway('  - { name: opendkim, address: "inet:127.0.0.1:8891", antiSpam: false }\n  - { name: clamav, address: "/run/clamav.sock" }\n')]);
  assert.equal(r.code, 1);
  assert.match(r.out + r.err, /gateway\.yaml: milters\[1\]\.address: "\/run\/clamav\.sock" is not a milter address/);
});

it('explain: each filter runs or is skipped, with the reason (Bypass-Anti-Spam skips the anti-spam ones)', () => {
  const args = gateway('  - { name: opendkim, address: "inet:127.0.0.1:8891", antiSpam: false }\n');
  const internet = mailgw(['explain', ...args, '--binding', '0.0.0.0:25', '--client-ip', '198.51.100.7']);
  assert.equal(internet.code, 0, internet.err);
  assert.match(internet.out, /Content filters at the end of DATA:\n  rspamd +runs +filter rspamd \(anti-spam\) runs/);
  assert.match(internet.out, /\n  opendkim +runs /);
  const partner = JSON.parse(mailgw(['explain', ...args, '--binding', '0.0.0.0:25', '--client-ip', '192.0.2.7', '--json']).out) as { filters: Array<{ name: string; runs: boolean; reason: { code: string } }> };
  assert.deepEqual(partner.filters.map((f) => [f.name, f.runs, f.reason.code]), [['rspamd', false, 'filter-bypassed'], ['opendkim', true, 'filter-runs']]);
});
