import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { SCRIPTS, scriptCommand, scriptSource, type ScriptName } from '@mailgw/queue';

const dir = new URL('../lua/', import.meta.url);

test('every Redis script is a file in lua/ with a header saying its KEYS, ARGV and result, and is registered', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -4)).sort();
  assert.deepEqual(files, Object.keys(SCRIPTS).sort());
  for (const name of files as ScriptName[]) {
    const lua = scriptSource(name);
    const header = /^--\[\[([\s\S]*?)\]\]/.exec(lua);
    assert.ok(header, `${name}.lua opens with a --[[ … ]] header`);
    assert.match(header[1]!, /Input:/, name);
    assert.match(header[1]!, /Output:/, name);
    // The header names exactly the KEYS the script is registered with.
    const keys = new Set([...header[1]!.matchAll(/KEYS\[(\d+)\]/g)].map((m) => m[1]));
    assert.equal(keys.size, SCRIPTS[name], `${name}: KEYS in the header vs SCRIPTS`);
    assert.match(scriptCommand(name), /^mailgw[A-Z][A-Za-z]+$/);
  }
});
