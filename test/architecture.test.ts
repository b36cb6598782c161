// The package graph as the README's Architecture section states it, checked: the pure
// packages do no I/O, ops reaches mail only through the queue, and the shared model of a
// message (address, reply, date, header parser) is defined once, in @mailgw/mail.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkgDir = (p: string) => path.join(root, 'packages', p);

function sources(pkg: string): Array<{ file: string; text: string }> {
  const dir = path.join(pkgDir(pkg), 'src');
  const out: Array<{ file: string; text: string }> = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push({ file: path.relative(root, p), text: readFileSync(p, 'utf8') });
    }
  };
  walk(dir);
  return out;
}

const imports = (text: string) => [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)].map((m) => m[1]!);
const packages = readdirSync(path.join(root, 'packages')).filter((p) => !p.startsWith('.'));

test('mail and policy are pure: no sockets, files, Redis or SMTP library', () => {
  const io = /^(node:(fs|net|tls|dns|child_process|http|https|dgram)(\/.*)?|ioredis|bullmq|smtp-server|nodemailer|pino)$/;
  for (const pkg of ['mail', 'policy']) {
    for (const s of sources(pkg)) {
      const bad = imports(s.text).filter((i) => io.test(i));
      assert.deepEqual(bad, [], `${s.file} imports ${bad.join(', ')}`);
    }
  }
});

test('ops reads and changes mail through the queue, never through worker internals', () => {
  const deps = Object.keys((JSON.parse(readFileSync(path.join(pkgDir('ops'), 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  assert.ok(!deps.includes('@mailgw/worker'), 'packages/ops/package.json depends on @mailgw/worker');
  for (const s of sources('ops')) assert.ok(!imports(s.text).some((i) => i.startsWith('@mailgw/worker')), `${s.file} imports @mailgw/worker`);
});

test('the model of a message is defined once, in @mailgw/mail', () => {
  // What used to exist two to four times: address parsers, Reply types, RFC 5322 dates, header parsers.
  const defs: Array<[RegExp, string]> = [
    [/export (interface|type) Reply\b/, 'Reply type'],
    [/export function (parseEnvelopeAddress|splitAddress)\b/, 'address parser'],
    [/export function rfc5322Date\b/, 'RFC 5322 date'],
    [/export function (parseHeaderFields|headerValue|headerSection)\b/, 'header parser'],
    [/export function (parseReply|localReply)\b/, 'reply parser'],
  ];
  for (const [re, what] of defs) {
    const where = packages.flatMap((p) => sources(p).filter((s) => re.test(s.text)).map((s) => s.file));
    assert.ok(where.length > 0, `${what} is defined somewhere`);
    assert.deepEqual(where.filter((f) => !f.startsWith('packages/mail/')), [], `${what} defined outside packages/mail`);
  }
});
