// gateway.yaml `processes`: auto (default) or { listeners, workers }, errors with file and key,
// and the counts `mailgw start` runs for each.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { formatIssue } from '../src/issues.js';
import { loadConfig } from '../src/load.js';
import { processCounts } from '../src/processes-schema.js';

function load(processes: string | null): { ok: true; value: unknown } | { ok: false; errors: string[] } {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailgw-processes-'));
  mkdirSync(path.join(dir, 'connectors.d'));
  writeFileSync(path.join(dir, 'connectors.d', 'default.yaml'), 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
  writeFileSync(path.join(dir, 'gateway.yaml'), `acceptedDomains: [{ domain: contoso.test }]\n${processes === null ? '' : `processes: ${processes}\n`}`);
  const r = loadConfig({ configPath: path.join(dir, 'gateway.yaml') });
  return r.ok ? { ok: true, value: r.config.gateway.processes } : { ok: false, errors: r.errors.map(formatIssue) };
}

describe('processes', () => {
  it('defaults to auto; takes Auto in any case and explicit counts, 0 on one side', () => {
    assert.deepEqual(load(null), { ok: true, value: 'auto' });
    assert.deepEqual(load('Auto'), { ok: true, value: 'auto' });
    assert.deepEqual(load('{ listeners: 3, workers: 0 }'), { ok: true, value: { listeners: 3, workers: 0 } });
    assert.deepEqual(load('{ listeners: 0, workers: 2 }'), { ok: true, value: { listeners: 0, workers: 2 } });
  });

  it('refuses anything else, naming gateway.yaml and the key', () => {
    const cases: Array<[string, RegExp]> = [
      ['many', /gateway\.yaml: processes: "many": must be auto or \{ listeners: N, workers: N \}/],
      ['{ listeners: 2 }', /gateway\.yaml: processes\.workers: /],
      ['{ listeners: 0, workers: 0 }', /gateway\.yaml: processes: give at least one listener or one worker process/],
      ['{ listeners: -1, workers: 1 }', /gateway\.yaml: processes\.listeners: must be at least 0/],
      ['{ listeners: 1, workers: 1, extra: 1 }', /gateway\.yaml: processes: .*extra/],
    ];
    for (const [yaml, want] of cases) {
      const r = load(yaml);
      assert.equal(r.ok, false, yaml);
      if (!r.ok) assert.ok(r.errors.some((e) => want.test(e)), `${yaml}: ${r.errors.join(' | ')}`);
    }
  });

  it('auto: one listener per core, half as many workers, at least one of each', () => {
    assert.deepEqual(processCounts('auto', 1), { listeners: 1, workers: 1 });
    assert.deepEqual(processCounts('auto', 2), { listeners: 2, workers: 1 });
    assert.deepEqual(processCounts('auto', 8), { listeners: 8, workers: 4 });
    assert.deepEqual(processCounts({ listeners: 2, workers: 0 }, 8), { listeners: 2, workers: 0 });
  });
});
