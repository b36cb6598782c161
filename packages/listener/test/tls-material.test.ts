// The self-signed certificate when several listener processes start at once (mailgw start):
// one makes the pair, the others wait for it; every process gets a key that matches its
// certificate. Real openssl, real processes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { pino } from 'pino';
import { ensureSelfSigned } from '../src/tls-material.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

it('four processes making the same self-signed certificate at once: one makes it, every one gets a matching pair', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-tls-race-'));
  try {
    const script = path.join(here, 'helpers', 'make-self-signed.ts');
    const results = await Promise.all(
      [1, 2, 3, 4].map(() => run(process.execPath, ['--conditions=mailgw-src', '--import', 'tsx', script, path.join(dir, 'tls')], { cwd: path.join(here, '..') }).then((r) => r.stdout.trim())),
    );
    assert.equal(results.filter((x) => x === 'true').length, 1, `exactly one made it: ${results.join(',')}`);
    assert.equal(results.filter((x) => x === 'false').length, 3);
    // And later, in this process: reused as it is.
    const again = await ensureSelfSigned(path.join(dir, 'tls'), 'race.contoso.test', pino({ level: 'silent' }), 'Default');
    assert.equal(again.created, false);
    assert.ok(tls.createSecureContext({ key: readFileSync(again.keyFile), cert: readFileSync(again.certFile) }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
