// A connector's own certificate files (tlsCertificate, tlsKey), checked before anything listens:
// files that cannot be read, are not PEM, are encrypted or do not belong together are errors
// naming the connector's file and the key; a certificate that has expired, soon will, or does
// not name the connector's FQDN is a warning. Real files made with openssl.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CERT_EXPIRY_WARNING_DAYS, tlsFileIssues } from '@mailgw/listener';
import { baseGateway, compile } from './helpers/gateway.js';

let dir: string;

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A self-signed EC certificate for `cn` valid `days` days, as <name>.crt and <name>.key in dir. */
function makeCert(name: string, cn: string, days: number): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, `${name}.key`), '-out', path.join(dir, `${name}.crt`), '-days', String(days), '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn}`]);
}

async function issues(files: { tlsCertificate: string; tlsKey: string }, now?: number) {
  const policy = compile(await baseGateway(), { 'client.yaml': { name: 'Client', usage: 'Client', fqdn: 'mail.contoso.test', bindings: ['127.0.0.1:2587'], ...files } });
  return tlsFileIssues(policy.connectors, dir, now);
}
const texts = (list: ReadonlyArray<{ file: string; path: string; message: string }>) => list.map((i) => `${i.file}: ${i.path}: ${i.message}`);

describe('the connectors\' certificate files', () => {
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-tlsfiles-'));
    makeCert('good', 'mail.contoso.test', 365);
    makeCert('other', 'other.test', CERT_EXPIRY_WARNING_DAYS - 20);
    writeFileSync(path.join(dir, 'garbage.crt'), 'not a certificate\n');
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-aes256', '-pass', 'pass:secret', '-out', path.join(dir, 'encrypted.key')]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a usable pair for the FQDN, valid for a year: nothing to say (paths relative to the config)', async () => {
    assert.deepEqual(await issues({ tlsCertificate: 'good.crt', tlsKey: 'good.key' }), { errors: [], warnings: [] });
  });

  test('errors name the file, the key and what is wrong', async () => {
    const f = (n: string) => path.join(dir, n);
    assert.deepEqual(texts((await issues({ tlsCertificate: 'missing.crt', tlsKey: 'good.key' })).errors), [`test#client.yaml: tlsCertificate: cannot read ${f('missing.crt')}: no such file`]);
    assert.deepEqual(texts((await issues({ tlsCertificate: 'good.crt', tlsKey: '.' })).errors), [`test#client.yaml: tlsKey: cannot read ${dir}: is a directory`]);
    assert.deepEqual(texts((await issues({ tlsCertificate: 'garbage.crt', tlsKey: 'good.key' })).errors), [`test#client.yaml: tlsCertificate: ${f('garbage.crt')} is not a PEM certificate`]);
    assert.deepEqual(texts((await issues({ tlsCertificate: 'good.crt', tlsKey: 'garbage.crt' })).errors), [`test#client.yaml: tlsKey: ${f('garbage.crt')} is not a PEM private key`]);
    assert.deepEqual(texts((await issues({ tlsCertificate: 'good.crt', tlsKey: 'encrypted.key' })).errors), [`test#client.yaml: tlsKey: ${f('encrypted.key')} is encrypted: mailgw needs the key without a passphrase (openssl pkey -in it -out a new file)`]);
    assert.deepEqual(texts((await issues({ tlsCertificate: 'good.crt', tlsKey: 'other.key' })).errors), [`test#client.yaml: tlsKey: ${f('other.key')} is not the key of ${f('good.crt')} (CN=mail.contoso.test)`]);
  });

  test('warnings: a certificate that expires soon, has expired, or names another host', async () => {
    const f = path.join(dir, 'other.crt');
    const soon = await issues({ tlsCertificate: 'other.crt', tlsKey: 'other.key' });
    assert.deepEqual(soon.errors, []);
    assert.equal(soon.warnings.length, 2);
    assert.match(soon.warnings[0]!.message, new RegExp(`^${f.replace(/[.]/g, '\\.')} expires on \\d{4}-\\d\\d-\\d\\d, in (9|10) days$`));
    assert.deepEqual(texts(soon.warnings.slice(1)), [`test#client.yaml: tlsCertificate: ${f} does not name mail.contoso.test, the connector's FQDN (it names DNS:other.test): clients that check the name will refuse it`]);
    const later = await issues({ tlsCertificate: 'good.crt', tlsKey: 'good.key' }, Date.now() + 400 * 86_400_000);
    assert.deepEqual(later.errors, []);
    assert.equal(later.warnings.length, 1);
    assert.match(later.warnings[0]!.message, /good\.crt expired on \d{4}-\d\d-\d\d: clients that check certificates will refuse it$/);
  });

  test('connectors without their own files, and those that offer no TLS, are not looked at', async () => {
    const policy = compile(await baseGateway(), {
      'self.yaml': { name: 'Self', usage: 'Client', bindings: ['127.0.0.1:2587'] },
      'plain.yaml': { name: 'Plain', bindings: ['127.0.0.1:2525'], authMechanism: ['None'], tlsCertificate: 'missing.crt', tlsKey: 'missing.key' },
      'off.yaml': { name: 'Off', usage: 'Client', enabled: false, bindings: ['127.0.0.1:2588'], tlsCertificate: 'missing.crt', tlsKey: 'missing.key' },
    });
    assert.deepEqual(tlsFileIssues(policy.connectors, dir), { errors: [], warnings: [] });
  });
});
