// A next hop that answers badly on purpose, on raw sockets, from a seeded PRNG: replies with
// 8-bit or 2,000-character texts, no text, mismatched multiline codes, lines without a code,
// 4xx and 5xx out of the blue, 421 and hang-ups, replies cut into pieces. It records, per
// message (its X-Load-Id), the recipients it really accepted (a 2xx RCPT in a transaction whose
// final dot then got a 2xx), and every DSN (MAIL FROM:<>) whose data it received.
import net from 'node:net';
import { prng, type Rng } from './fuzz.js';
import { closeServer, takeData } from './raw-sink.js';

export interface HostileHop {
  readonly port: number;
  /** X-Load-Id → recipients accepted at least once (a 2xx RCPT, then a 2xx after the dot). */
  readonly acceptedFor: Map<string, Set<string>>;
  /** The data of every DSN received (MAIL FROM:<>), whatever was answered to it. */
  readonly dsns: Buffer[];
  readonly sessions: { count: number };
  /** Open sessions and the last lines each way, for a failure message when the queue stalls. */
  openSessions(): Array<{ idleMs: number; last: string[] }>;
  close(): Promise<void>;
}

type Stage = 'greeting' | 'ehlo' | 'mail' | 'rcpt' | 'data' | 'dot' | 'other';

/** What a proper server says at each stage. */
const NORMAL: Record<Stage, string> = {
  greeting: '220 hostile.test ESMTP',
  ehlo: '250-hostile.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES',
  mail: '250 2.1.0 ok',
  rcpt: '250 2.1.5 ok',
  data: '354 go ahead',
  dot: '250 2.0.0 queued',
  other: '250 2.0.0 ok',
};

type Answer = { lines: string; close?: boolean; split?: boolean } | { hangUp: true };

function answer(r: Rng, stage: Stage): Answer {
  const normal = NORMAL[stage];
  const code = normal.slice(0, 3);
  const k = r.next();
  if (k < 0.6) return { lines: normal };
  if (k < 0.68) {
    const odd = r.pick([`${code} ${'é'.repeat(3)} caf\xe9 \xff\x80`, `${code} ${'w'.repeat(2000)}`, code, `${code}-one\r\n${code}-two\r\n${code} three`, `${code} 9.9.9 not an enhanced code`]);
    return { lines: odd, split: r.chance(0.3) };
  }
  if (k < 0.74) return { lines: r.pick(['451 4.3.0 try again later', '450 4.2.1 mailbox busy', '452 4.3.1 out of space', `4${r.int(10, 99)} weird ${'x'.repeat(r.int(0, 40))}`]) };
  if (k < 0.8) return { lines: r.pick(['550 5.1.1 no such user', '554 5.7.1 rejected', '552 5.3.4 too big', `5${r.int(10, 99)} \xe9chec ${'y'.repeat(r.int(0, 300))}`, '550-first line\r\n550-5.7.1 second\r\n550 third']) };
  // (Not an empty line: a client rightly waits for the reply after it, until its timeout.)
  if (k < 0.84) return { lines: r.pick([`${code === '250' ? '550' : '250'}-mixed\r\n${code} codes`, 'hello there', `${code}0 four digits`]) };
  if (k < 0.88) return { lines: '421 4.3.2 closing, too busy', close: true };
  if (k < 0.9) return { hangUp: true };
  return { lines: normal, split: true };
}

export async function startHostileHop(seed: number): Promise<HostileHop> {
  const acceptedFor = new Map<string, Set<string>>();
  const dsns: Buffer[] = [];
  const sessions = { count: 0 };
  const sockets = new Set<net.Socket>();
  const traces = new Map<net.Socket, { at: number; last: string[] }>();
  const server = net.createServer((socket) => {
    const r = prng((seed + sessions.count++ * 7919) >>> 0);
    sockets.add(socket);
    const trace = { at: Date.now(), last: [] as string[] };
    traces.set(socket, trace);
    const note = (dir: string, text: string) => {
      trace.at = Date.now();
      trace.last.push(`${dir} ${JSON.stringify(text.slice(0, 120))}`);
      if (trace.last.length > 6) trace.last.shift();
    };
    socket.on('close', () => {
      sockets.delete(socket);
      traces.delete(socket);
    });
    socket.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    let inData = false;
    let mailFrom: string | null = null;
    let rcptOk: string[] = [];
    let gone = false;
    // While a split reply waits for its second half, later output queues behind it (a server
    // that cuts its replies still sends them in order).
    let held: Buffer[] | null = null;
    let endAfterHeld = false;
    const put = (b: Buffer) => (held ? held.push(b) : socket.write(b));
    const putSplit = (b: Buffer) => {
      const cut = r.int(1, b.length - 1);
      put(b.subarray(0, cut));
      if (held) return void held.push(b.subarray(cut));
      held = [b.subarray(cut)];
      setTimeout(() => {
        const q = held ?? [];
        held = null;
        if (socket.destroyed) return;
        for (const x of q) socket.write(x);
        if (endAfterHeld) socket.end();
      }, 5);
    };
    const end = (last?: string) => {
      if (last) put(Buffer.from(last, 'latin1'));
      if (held) endAfterHeld = true;
      else socket.end();
    };
    /** Answers a stage; false when the connection is gone. */
    const say = (stage: Stage, forced?: string): boolean => {
      if (gone) return false;
      const a: Answer = forced !== undefined ? { lines: forced } : answer(r, stage);
      if ('hangUp' in a) {
        gone = true;
        socket.destroy();
        return false;
      }
      note('>', a.lines);
      const out = Buffer.from(`${a.lines}\r\n`, 'latin1');
      if (a.split && out.length > 2) putSplit(out);
      else put(out);
      if (a.close) {
        gone = true;
        end();
        return false;
      }
      // Taken for a yes: after the final dot only a well-formed 2xx (one code on every line);
      // elsewhere what a lenient client reads (the first digit), so that the record of what
      // was accepted is the hop's most generous one, and a "delivered" it lacks is the worker's.
      return stage === 'dot' ? /^2\d\d(?:[ -]|$)/.test(a.lines) && a.lines.split('\r\n').every((l) => /^2\d\d(?:[ -]|$)/.test(l)) : a.lines.startsWith('2');
    };
    say('greeting', r.chance(0.05) ? r.pick(['554 5.7.1 go away', '421 4.3.2 busy']) : NORMAL.greeting);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (gone) return;
        if (inData) {
          const data = takeData(buf);
          if (!data) return;
          buf = data.rest;
          inData = false;
          const raw = data.raw;
          if (mailFrom === '' && !data.empty) dsns.push(raw);
          const ok = say('dot');
          const id = /\r\nX-Load-Id: (\S+)\r\n/.exec(`\r\n${raw.toString('latin1', 0, 8192)}`)?.[1];
          if (ok && id) {
            const set = acceptedFor.get(id) ?? new Set<string>();
            for (const a of rcptOk) set.add(a.toLowerCase());
            acceptedFor.set(id, set);
          }
          mailFrom = null;
          rcptOk = [];
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.toString('latin1', 0, nl);
        buf = buf.subarray(nl + 2);
        note('<', line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') say('ehlo');
        else if (verb === 'HELO') say('other', '250 hostile.test');
        else if (verb === 'MAIL') {
          rcptOk = [];
          mailFrom = say('mail') ? (/<([^>]*)>/.exec(line)?.[1] ?? '') : null;
        } else if (verb === 'RCPT') {
          if (say('rcpt') && mailFrom !== null) rcptOk.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
        } else if (verb === 'DATA') {
          // Data follows only after a 354; any other answer leaves the client in command mode.
          const a = answer(r, 'data');
          if ('hangUp' in a) {
            gone = true;
            socket.destroy();
            return;
          }
          const go = a.lines === NORMAL.data || (mailFrom !== null && rcptOk.length > 0 && r.chance(0.9));
          const reply = go ? NORMAL.data : a.lines.startsWith('354') ? '554 5.5.1 no valid recipients' : a.lines;
          note('>', reply);
          put(Buffer.from(`${reply}\r\n`, 'latin1'));
          inData = go;
        } else if (verb === 'QUIT') {
          end('221 2.0.0 bye\r\n');
          gone = true;
          return;
        } else if (verb === 'RSET' || verb === 'NOOP') {
          mailFrom = null;
          rcptOk = [];
          say('other');
        } else say('other', '502 5.5.2 not here');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    acceptedFor,
    dsns,
    sessions,
    openSessions: () => [...traces.values()].map((x) => ({ idleMs: Date.now() - x.at, last: [...x.last] })),
    close: () => closeServer(server, sockets),
  };
}
