// Runs every golden scenario (test/policy/*.yaml) through the pure engine and compares the
// replies with what Exchange answers in the seeds' recipes.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadGolden, type GoldenFile } from './golden.js';
import { explain } from '@mailgw/policy';

const dir = path.dirname(fileURLToPath(import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

it('there are golden files for each seed', () => {
  assert.ok(files.length >= 4, `only ${files.length} golden files`);
});

for (const f of files) {
  const golden = parse(readFileSync(path.join(dir, f), 'utf8')) as GoldenFile;
  describe(`${f}: ${golden.title}`, () => {
    const policy = loadGolden(golden, f);
    for (const s of golden.scenarios) {
      it(s.name, () => {
        const e = explain(policy, s);
        const reply = (stage: string) => e.stages.find((x) => x.stage === stage)?.reply;
        const why = JSON.stringify(e.stages, null, 1);
        if ('connector' in s.expect) assert.equal(e.connector, s.expect.connector, why);
        for (const stage of ['connect', 'admission', 'helo', 'starttls', 'auth', 'mail', 'data', 'message'] as const) {
          if (s.expect[stage] !== undefined) assert.equal(reply(stage), s.expect[stage], `${stage}: ${why}`);
        }
        if (s.expect.antiSpam !== undefined) assert.equal(e.antiSpam?.applies, s.expect.antiSpam, why);
        if (s.expect.firewalled !== undefined) assert.deepEqual(e.firewalled?.map((f) => f.field), s.expect.firewalled, why);
        if (s.expect.rcpt) {
          assert.deepEqual(e.stages.filter((x) => x.stage === 'rcpt').map((x) => x.reply), s.expect.rcpt, why);
        }
      });
    }
  });
}
