// Keys and rights that are accepted but cannot do anything are warned about, naming the file
// and key (defect 5); Exchange's DeliveryStatusNotificationEnabled is the primary name and
// dsnEnabled its alias (defect 6).
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { formatIssue } from '../src/issues.js';
import { loadConfig } from '../src/load.js';
import { parse } from 'yaml';
import { buildConfig, type BuildResult } from '../src/validate.js';
import { GATEWAY, buildFrom } from './fixture.js';



const build = (connectors: Record<string, unknown>) => buildFrom(GATEWAY, connectors);
const warningsOf = (r: BuildResult) => r.warnings.map(formatIssue);

describe('accepted but without effect: warnings naming file and key', () => {
  it('permission groups Partners (without domainSecureEnabled) and ExchangeLegacyServers, listed or from usage', () => {
    const r = build({
      'partner.yaml': { name: 'P', bindings: ['0.0.0.0:25'], remoteIPRanges: ['192.0.2.0/28'], permissionGroups: ['AnonymousUsers', 'Partners'] },
      'internal.yaml': { name: 'I', usage: 'Internal', bindings: ['0.0.0.0:26'], remoteIPRanges: ['192.0.2.0/28'] },
    });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const w = warningsOf(r);
    assert.ok(w.some((x) => /^connectors\.d\/partner\.yaml: permissionGroups\[1\]: permission group Partners has no effect on a connector without domainSecureEnabled/.test(x)), w.join('\n'));
    assert.ok(w.some((x) => /^connectors\.d\/internal\.yaml: usage: permission group ExchangeLegacyServers \(from usage Internal\) has no effect/.test(x)), w.join('\n'));
    // With domain security (usage Partner turns it on) the group gives its rights: no warning.
    const partner = build({ 'p.yaml': { name: 'P', usage: 'Partner', bindings: ['0.0.0.0:25'], remoteIPRanges: ['192.0.2.0/28'] } });
    assert.ok(partner.ok);
    assert.equal(partner.config.connectors[0]!.domainSecureEnabled, true);
    assert.deepEqual(warningsOf(partner).filter((x) => /Partners/.test(x)), []);
    const off = build({ 'p.yaml': { name: 'P', usage: 'Partner', domainSecureEnabled: false, bindings: ['0.0.0.0:25'], remoteIPRanges: ['192.0.2.0/28'] } });
    assert.ok(warningsOf(off).some((x) => /^connectors\.d\/p\.yaml: usage: permission group Partners \(from usage Partner\) has no effect on a connector without domainSecureEnabled/.test(x)), warningsOf(off).join('\n'));
  });

  it("a connector named as mailgw's own mail (Pickup, Journal, DSN, TLSRPT, any case) is warned about; others are not", () => {
    const r = build({ 'pickup.yaml': { name: 'pickup', bindings: ['0.0.0.0:25'] }, 'dsn.yaml': { name: 'DSN', bindings: ['0.0.0.0:26'] }, 'ok.yaml': { name: 'Pickup Relay', bindings: ['0.0.0.0:27'] } });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const w = warningsOf(r);
    assert.ok(w.includes(`connectors.d/pickup.yaml: name: "pickup" is the name mailgw gives the pickup directory's mail (Pickup) in the queue, the logs, the tracking log and the metrics: this connector's mail could not be told apart from it there; rename the connector`), w.join('\n'));
    assert.ok(w.some((x) => x.startsWith('connectors.d/dsn.yaml: name: "DSN" is the name mailgw gives delivery status notifications (DSN)')), w.join('\n'));
    assert.ok(!w.some((x) => x.startsWith('connectors.d/ok.yaml')), w.join('\n'));
  });

  it('the rights Accept-Authentication-Flag and Accept-Exch50 granted explicitly, and grants to principals no session becomes', () => {
    const r = build({
      'c.yaml': {
        name: 'C',
        bindings: ['0.0.0.0:25'],
        remoteIPRanges: ['192.0.2.0/28'],
        permissionGroups: ['AnonymousUsers'],
        permissions: [
          { user: 'Anonymous', extendedRights: ['ms-Exch-SMTP-Submit', 'ms-Exch-SMTP-Accept-Authentication-Flag', 'SMTP-Accept-Exch50'] },
          { user: 'MS Exchange\\Partner Servers', extendedRights: ['ms-Exch-SMTP-Submit'] },
        ],
      },
    });
    assert.ok(r.ok);
    const w = warningsOf(r);
    assert.ok(w.includes('connectors.d/c.yaml: permissions[0].extendedRights[1]: ms-Exch-SMTP-Accept-Authentication-Flag has no effect in mailgw: it lets Exchange honour AUTH= on MAIL and treat the message as authenticated inside the organisation, which mailgw does not do.'), w.join('\n'));
    assert.ok(w.some((x) => x.startsWith('connectors.d/c.yaml: permissions[0].extendedRights[2]: ms-Exch-SMTP-Accept-Exch50 has no effect')), w.join('\n'));
    assert.ok(w.some((x) => x.startsWith('connectors.d/c.yaml: permissions[1].user: Partners has no effect')), w.join('\n'));
    assert.equal(w.length, 3, w.join('\n'));
  });

  it('directory.groupMembership groupOfNames with preset activeDirectory: grants to groups would match nobody', () => {
    const directory = { url: ['ldaps://dc1.contoso.test'], bindDn: 'CN=svc,DC=contoso,DC=test', bindPasswordEnv: 'X', baseDn: 'DC=contoso,DC=test' };
    const connectors = { 'd.yaml': { name: 'D', usage: 'Internet', bindings: ['0.0.0.0:25'] } };
    const build = (d: object) => buildConfig({ gatewayFile: 'gateway.yaml', gatewayData: { ...GATEWAY, directory: d }, connectorFiles: Object.entries(connectors).map(([file, data]) => ({ file: `connectors.d/${file}`, data })), readReferenced: (p) => ({ ok: false, error: `cannot read ${p}`, file: p }), parseYaml: parse, fallbackFqdn: 'host.test', env: { X: 'secret' } });
    const ad = build({ ...directory, preset: 'activeDirectory', groupMembership: 'groupOfNames' });
    assert.ok(ad.ok, JSON.stringify(!ad.ok && ad.errors));
    assert.deepEqual(warningsOf(ad).map((w) => w.split(': ').slice(0, 2).join(': ')), ['gateway.yaml: directory.groupMembership']);
    assert.match(warningsOf(ad)[0]!, /Active Directory groups are objectClass group/);
    for (const d of [{ ...directory, preset: 'openLDAP', groupMembership: 'groupOfNames' }, { ...directory, preset: 'activeDirectory' }]) {
      const r = build(d);
      assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
      assert.deepEqual(r.warnings, []);
    }
  });

  it('groups and rights that work give no such warning', () => {
    const r = build({ 'd.yaml': { name: 'D', usage: 'Internet', bindings: ['0.0.0.0:25'], permissions: [{ user: 'Anonymous', extendedRights: ['ms-Exch-Bypass-Message-Size-Limit'] }] } });
    assert.ok(r.ok);
    assert.deepEqual(r.warnings, []);
  });

  it('reach the loader, so start prints them too', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-noeffect-'));
    mkdirSync(path.join(dir, 'connectors.d'));
    writeFileSync(path.join(dir, 'gateway.yaml'), 'fqdn: mail.contoso.test\nacceptedDomains: [{ domain: contoso.test }]\n');
    writeFileSync(path.join(dir, 'connectors.d', 'partner.yaml'), 'name: P\nusage: Partner\ndomainSecureEnabled: false\nbindings: [0.0.0.0:25]\nremoteIPRanges: [192.0.2.0/28]\n');
    const r = loadConfig({ configPath: path.join(dir, 'gateway.yaml') });
    assert.ok(r.ok);
    assert.ok(r.warnings.some((w) => w.file.endsWith('partner.yaml') && w.path === 'usage' && /Partners \(from usage Partner\) has no effect/.test(w.message)), JSON.stringify(r.warnings));
  });
});

describe('deliveryStatusNotificationEnabled (Exchange\'s name) and its alias dsnEnabled', () => {
  const c = (extra: Record<string, unknown>) => build({ 'a.yaml': { name: 'A', usage: 'Internet', bindings: ['0.0.0.0:25'], ...extra } });
  const value = (r: BuildResult) => (r.ok ? r.config.connectors[0]!.deliveryStatusNotificationEnabled : r.errors.map(formatIssue).join('\n'));
  it('Exchange\'s name is accepted; default true', () => {
    assert.equal(value(c({})), true);
    assert.equal(value(c({ deliveryStatusNotificationEnabled: false })), false);
  });
  it('dsnEnabled still works as an alias', () => {
    assert.equal(value(c({ dsnEnabled: false })), false);
    assert.equal(value(c({ dsnEnabled: false, deliveryStatusNotificationEnabled: false })), false);
  });
  it('both, disagreeing, is an error naming the file and both keys', () => {
    const r = c({ dsnEnabled: true, deliveryStatusNotificationEnabled: false });
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.deepEqual(r.errors.map(formatIssue), ['connectors.d/a.yaml: dsnEnabled: deliveryStatusNotificationEnabled: false and dsnEnabled: true disagree; dsnEnabled is an alias of deliveryStatusNotificationEnabled: keep one']);
    }
  });
});
