// The pure parts of the listener, without sockets: line-ending filter (at every chunk split),
// header collection, and the socket plan for bindings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeaderCollector, parseHeaderFields, rfc5322Date } from '@mailgw/mail';
import fc from 'fast-check';
import { LineEndingFilter, planSockets, receivedHeader } from '@mailgw/listener';
import { baseGateway, compile } from './helpers/gateway.js';

function feed(mode: 'reject' | 'normalise', chunks: string[]): { out: string; bare: boolean } {
  const f = new LineEndingFilter(mode);
  let out = '';
  for (const c of chunks) out += f.push(Buffer.from(c, 'latin1')).toString('latin1');
  out += f.end().toString('latin1');
  return { out, bare: f.bare };
}

/** Every way to cut `s` in two, plus byte by byte. */
function splits(s: string): string[][] {
  const out: string[][] = [[s], [...s]];
  for (let i = 1; i < s.length; i++) out.push([s.slice(0, i), s.slice(i)]);
  return out;
}

describe('LineEndingFilter', () => {
  const cases: Array<[string, boolean, string]> = [
    ['a\r\nb\r\n', false, 'a\r\nb\r\n'],
    ['a\nb\r\n', true, 'a\r\nb\r\n'],
    ['a\rb\r\n', true, 'a\r\nb\r\n'],
    ['a\r\r\n', true, 'a\r\n\r\n'],
    ['\n.\n', true, '\r\n.\r\n'],
    ['x\r', true, 'x\r\n'],
    ['\r\n\r\n', false, '\r\n\r\n'],
    ['', false, ''],
    ['no line end', false, 'no line end'],
  ];
  for (const [input, bare, normalised] of cases) {
    it(`${JSON.stringify(input)}: bare=${bare} at every chunk split`, () => {
      for (const chunks of splits(input)) {
        const r = feed('reject', chunks);
        assert.equal(r.bare, bare, JSON.stringify(chunks));
        assert.equal(r.out, input, 'reject mode passes bytes through');
        const n = feed('normalise', chunks);
        assert.equal(n.bare, bare);
        assert.equal(n.out, normalised, JSON.stringify(chunks));
      }
    });
  }
});

describe('LineEndingFilter on any octets', () => {
  // The reference: one octet at a time. A CR is bare unless an LF follows; an LF is bare unless
  // a CR precedes it; normalising makes each bare one a CRLF.
  function reference(bytes: number[]): { out: number[]; bare: boolean } {
    const out: number[] = [];
    let bare = false;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (b === 0x0d && bytes[i + 1] === 0x0a) {
        out.push(0x0d, 0x0a);
        i++;
      } else if (b === 0x0d || b === 0x0a) {
        bare = true;
        out.push(0x0d, 0x0a);
      } else out.push(b);
    }
    return { out, bare };
  }
  it('matches the octet-by-octet reference at any chunking, 8-bit octets included', () => {
    const octets = fc.array(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x41, 0x00, 0xc3, 0xa9, 0xff), { maxLength: 120 });
    fc.assert(
      fc.property(octets, fc.array(fc.nat(120), { maxLength: 6 }), (bytes, cuts) => {
        const at = [...new Set(cuts.filter((c) => c < bytes.length))].sort((a, b) => a - b);
        const chunks = [0, ...at].map((from, k) => Buffer.from(bytes.slice(from, [...at, bytes.length][k])));
        const want = reference(bytes);
        for (const mode of ['reject', 'normalise'] as const) {
          const f = new LineEndingFilter(mode);
          const out = Buffer.concat([...chunks.map((c) => f.push(c)), f.end()]);
          assert.equal(f.bare, want.bare, mode);
          assert.deepEqual([...out], mode === 'normalise' ? want.out : bytes, mode);
        }
      }),
      { seed: 20261204, numRuns: 3000 },
    );
  });
});

describe('LineEndingFilter on one chunk of more than 16 MiB', () => {
  it('judges and normalises it as it does the same bytes in socket-sized chunks', () => {
    const window = 16 * 1024 * 1024;
    const bytes = Buffer.alloc(window + 4096, 0x61);
    for (const [at, text] of [[10, '\r\n'], [window - 2, '\n'], [window - 1, '\r'], [window, 'b\r\n'], [window + 9, '\n']] as const) bytes.write(text, at, 'latin1');
    for (const mode of ['reject', 'normalise'] as const) {
      const whole = new LineEndingFilter(mode);
      const out = Buffer.concat([whole.push(bytes), whole.end()]);
      const small = new LineEndingFilter(mode);
      const parts: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += 65536) parts.push(small.push(bytes.subarray(at, at + 65536)));
      parts.push(small.end());
      assert.equal(whole.bare, true, mode);
      assert.ok(out.equals(Buffer.concat(parts)), mode);
    }
  });
});

describe('HeaderCollector', () => {
  function collect(chunks: string[]): { header: string; rest: string; separator: boolean } {
    const h = new HeaderCollector();
    for (const [i, c] of chunks.entries()) {
      const end = h.push(Buffer.from(c, 'latin1'));
      // Later chunks are body: they never reach the collector.
      if (end) return { header: end.header.toString('latin1'), rest: end.rest.toString('latin1') + chunks.slice(i + 1).join(''), separator: end.separator };
    }
    const end = h.end();
    return { header: end.header.toString('latin1'), rest: end.rest.toString('latin1'), separator: end.separator };
  }

  it('ends at the empty line, at every chunk split', () => {
    const msg = 'A: 1\r\nB: 2\r\n folded\r\n\r\nbody\r\nC: not a header\r\n';
    for (const chunks of splits(msg)) {
      const r = collect(chunks);
      assert.deepEqual(r, { header: 'A: 1\r\nB: 2\r\n folded\r\n', rest: 'body\r\nC: not a header\r\n', separator: true }, JSON.stringify(chunks));
    }
  });

  it('ends at the first line that is no header field (no separator)', () => {
    for (const chunks of splits('A: 1\r\nthis is body text\r\n')) {
      assert.deepEqual(collect(chunks), { header: 'A: 1\r\n', rest: 'this is body text\r\n', separator: false }, JSON.stringify(chunks));
    }
    assert.deepEqual(collect([' leading space\r\n']), { header: '', rest: ' leading space\r\n', separator: false });
    assert.deepEqual(collect(['\r\nbody\r\n']), { header: '', rest: 'body\r\n', separator: true });
  });

  it('a message that is all header', () => {
    assert.deepEqual(collect(['A: 1\r\nB: 2\r\n']), { header: 'A: 1\r\nB: 2\r\n', rest: '', separator: false });
  });

  it('parses fields with their continuation lines', () => {
    const fields = parseHeaderFields(Buffer.from('Received: a\r\n\tb\r\nSubject: x\r\nRESENT-to: y\r\n'));
    assert.deepEqual(fields.map((f) => [f.name, f.raw.toString()]), [
      ['received', 'Received: a\r\n\tb\r\n'],
      ['subject', 'Subject: x\r\n'],
      ['resent-to', 'RESENT-to: y\r\n'],
    ]);
  });
});

describe('socket plan', () => {
  it('folds specific addresses into the wildcard of their port; [::] is IPv6-only beside 0.0.0.0', async () => {
    const policy = compile(await baseGateway(), {
      a: { name: 'A', usage: 'Internet', bindings: ['0.0.0.0:25', '[::]:25'] },
      b: { name: 'B', usage: 'Internet', bindings: ['10.0.0.1:25'], remoteIPRanges: ['192.0.2.0/24'] },
      c: { name: 'C', usage: 'Internet', bindings: ['10.0.0.1:26', '[::]:27'] },
      d: { name: 'D', usage: 'Internet', bindings: ['0.0.0.0:28'], enabled: false },
    });
    const plan = planSockets(policy.connectors);
    assert.ok(plan.ok);
    assert.deepEqual(
      plan.sockets.map((s) => [s.host, s.port, s.ipv6Only, s.connectors.map((c) => c.name)]),
      [
        ['0.0.0.0', 25, false, ['A', 'B']],
        ['::', 25, true, ['A']],
        ['10.0.0.1', 26, false, ['C']],
        ['::', 27, false, ['C']],
      ],
    );
  });

  it('refuses implicit-TLS and plain connectors on one socket', async () => {
    const policy = compile(await baseGateway(), {
      a: { name: 'A', usage: 'Internet', bindings: ['0.0.0.0:465'] },
      b: { name: 'B', usage: 'Client', bindings: ['0.0.0.0:465'], remoteIPRanges: ['192.0.2.0/24'], implicitTLS: true },
    });
    const plan = planSockets(policy.connectors);
    assert.equal(plan.ok, false);
    assert.match(!plan.ok ? plan.errors[0]!.message : '', /"B" \(implicitTLS\) and "A" \(.*\) would share one socket/);
    assert.equal(!plan.ok ? plan.errors[0]!.path : '', 'bindings');
  });
});

describe('Received header', () => {
  const base = { fqdn: 'mx.contoso.test', protocol: 'ESMTPSA', queueId: '01ABC', date: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)) };

  it('names the client, connector, TLS, user and queue id', () => {
    const h = receivedHeader({ ...base, helo: 'laptop.example', clientHostname: 'host.example', clientIP: '2001:db8::1', connector: 'Client', tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, authUser: 'alice' });
    assert.equal(
      h,
      'Received: from laptop.example (host.example [IPv6:2001:db8::1])\r\n' +
        '\tby mx.contoso.test (mailgw, connector Client)\r\n' +
        '\twith ESMTPSA (TLSv1.3 cipher=TLS_AES_256_GCM_SHA384) (authenticated as alice)\r\n' +
        '\tid 01ABC; Fri, 02 Jan 2026 03:04:05 +0000\r\n',
    );
    assert.equal(rfc5322Date(base.date), 'Fri, 02 Jan 2026 03:04:05 +0000');
  });

  it('cannot be broken out of by what the client sends', () => {
    const h = receivedHeader({ ...base, helo: 'x)\r\nBcc: a@b (y', clientHostname: '[192.0.2.1]', clientIP: '192.0.2.1', connector: 'A (b) \\', tls: null, authUser: 'u)\r\nX: 1' });
    assert.equal(h.split('\r\n').length, 5, h);
    assert.ok(h.startsWith('Received: from x???Bcc:?a?b??y ([192.0.2.1])\r\n'), h);
    assert.ok(h.includes('(mailgw, connector A \\(b\\) \\\\)'), h);
    assert.ok(h.includes('(authenticated as u\\)  X: 1)'), h);
  });
});
