// mailgw init: a commented gateway.yaml and the Default (25), Client (587) and printer-relay
// connectors for the admin's domain and host, which `mailgw check` accepts as written; existing
// files are never overwritten without --force (and then nothing at all is written).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { mailgw } from './helpers/binary.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function scratch(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'mailgw-init-'));
  dirs.push(d);
  return d;
}

interface CheckJson {
  ok: boolean;
  connectors: Array<{ name: string; bindings: string[]; authMechanism: string[]; remoteIPRanges: string[] }>;
}

describe('mailgw init', () => {
  it("writes a configuration for the admin's domain and host that mailgw check accepts", () => {
    const dir = path.join(scratch(), 'etc-mailgw');
    const r = mailgw(['init', dir, '--domain', 'Contoso.com', '--hostname', 'mail.contoso.com', '--data-dir', '/var/lib/mailgw']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Wrote .*gateway\.yaml/);
    const gw = readFileSync(path.join(dir, 'gateway.yaml'), 'utf8');
    assert.match(gw, /^fqdn: mail\.contoso\.com /m);
    assert.match(gw, /^dataDir: "\/var\/lib\/mailgw" /m);
    assert.match(gw, /^  - domain: contoso\.com$/m);
    assert.match(gw, /^# .+/m, 'commented');

    const check = mailgw(['check', '--config', path.join(dir, 'gateway.yaml'), '--json']);
    assert.equal(check.code, 0, check.err);
    const parsed = JSON.parse(check.out) as CheckJson;
    assert.equal(parsed.ok, true);
    const byName = new Map(parsed.connectors.map((c) => [c.name, c]));
    assert.deepEqual([...byName.keys()].sort(), ['Client', 'Default', 'Printers Relay']);
    assert.deepEqual(byName.get('Default')!.bindings, ['0.0.0.0:25', '[::]:25']);
    assert.deepEqual(byName.get('Client')!.bindings, ['0.0.0.0:587', '[::]:587']);
    assert.deepEqual(byName.get('Client')!.authMechanism.sort(), ['BasicAuth', 'BasicAuthRequireTLS', 'Tls']);
    assert.deepEqual(byName.get('Printers Relay')!.remoteIPRanges, ['192.0.2.0/28']);
    // The human-readable check says the same, with no warnings.
    const text = mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]);
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^Configuration OK: .*3 connector\(s\), fqdn mail\.contoso\.com$/m);
    assert.doesNotMatch(text.out + text.err, /Warnings:/);
  });

  it('the domain defaults to the host name without its first label', () => {
    const dir = scratch();
    const r = mailgw(['init', dir, '--hostname', 'mx1.fabrikam.example']);
    assert.equal(r.code, 0, r.err);
    assert.match(readFileSync(path.join(dir, 'gateway.yaml'), 'utf8'), /^  - domain: fabrikam\.example$/m);
    assert.equal(mailgw(['check', '--config', path.join(dir, 'gateway.yaml')]).code, 0);
  });

  it('refuses to overwrite existing files without --force, and then writes nothing', () => {
    const dir = scratch();
    writeFileSync(path.join(dir, 'gateway.yaml'), '# mine\n');
    const r = mailgw(['init', dir, '--domain', 'contoso.com', '--hostname', 'mail.contoso.com']);
    assert.equal(r.code, 1);
    assert.equal(r.err, `mailgw init: nothing written: ${path.join(dir, 'gateway.yaml')} already exists (--force overwrites)\n`);
    assert.equal(readFileSync(path.join(dir, 'gateway.yaml'), 'utf8'), '# mine\n');
    assert.throws(() => readFileSync(path.join(dir, 'connectors.d', '10-default.yaml')), /ENOENT/);

    const forced = mailgw(['init', dir, '--domain', 'contoso.com', '--hostname', 'mail.contoso.com', '--force']);
    assert.equal(forced.code, 0, forced.err);
    assert.match(readFileSync(path.join(dir, 'gateway.yaml'), 'utf8'), /^fqdn: mail\.contoso\.com /m);
  });

  it('refuses a host name or domain that is not a DNS name', () => {
    const dir = scratch();
    const bad = mailgw(['init', dir, '--hostname', 'localhost']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--hostname "localhost" is not a fully qualified host name/);
    const badDomain = mailgw(['init', dir, '--hostname', 'mail.contoso.com', '--domain', 'contoso com']);
    assert.equal(badDomain.code, 2);
    assert.match(badDomain.err, /--domain "contoso com" is not a domain/);
  });
});
