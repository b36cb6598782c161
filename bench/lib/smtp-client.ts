// A minimal SMTP client on raw sockets for load generation: one message per connection,
// timestamps taken around the transaction. Deliberately no library, so the load tool costs
// little CPU and measures the server, not itself.
import net from 'node:net';

export interface SendResult {
  ok: boolean;
  /** MAIL sent → final reply to DATA received (ms). */
  latencyMs: number;
  /** The part of it after the final dot was sent: the server's intake and durable commit (ms). */
  commitMs: number;
  /** When the final reply arrived (ms, performance.now()). */
  acceptedAt: number;
  reply: string;
}

export interface SendOptions {
  host: string;
  port: number;
  localAddress?: string;
  from: string;
  to: string;
  /** The message in pieces, written in one go (not joined: see makeBody). */
  body: readonly Buffer[];
  timeoutMs?: number;
}

/** Reads complete SMTP replies (handles multi-line 250- continuations). */
class ReplyReader {
  private buf = '';
  private waiters: Array<(line: string) => void> = [];
  private ready: string[] = [];
  push(chunk: Buffer): void {
    this.buf += chunk.toString('latin1');
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      if (line.length >= 4 && line[3] === '-') continue;
      const w = this.waiters.shift();
      if (w) w(line);
      else this.ready.push(line);
    }
  }
  next(): Promise<string> {
    const r = this.ready.shift();
    if (r !== undefined) return Promise.resolve(r);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

export function sendOne(o: SendOptions): Promise<SendResult> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: o.host, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    sock.setNoDelay(true);
    const reader = new ReplyReader();
    let t0 = 0;
    let tDot = 0;
    let finished = false;
    const finish = (ok: boolean, reply: string) => {
      if (finished) return;
      finished = true;
      const now = performance.now();
      clearTimeout(timer);
      sock.end();
      sock.destroySoon?.();
      resolve({ ok, latencyMs: t0 ? now - t0 : 0, commitMs: tDot ? now - tDot : 0, acceptedAt: now, reply });
    };
    const timer = setTimeout(() => finish(false, 'timeout'), o.timeoutMs ?? 30_000);
    sock.on('data', (c) => reader.push(c));
    sock.on('error', (e) => finish(false, `error ${e.message}`));
    sock.on('close', () => finish(false, 'closed'));
    const expect = async (code: string) => {
      const line = await reader.next();
      if (!line.startsWith(code)) throw new Error(line);
      return line;
    };
    (async () => {
      await expect('220');
      sock.write('EHLO bench.test\r\n');
      await expect('250');
      t0 = performance.now();
      sock.write(`MAIL FROM:<${o.from}>\r\n`);
      await expect('250');
      sock.write(`RCPT TO:<${o.to}>\r\n`);
      await expect('250');
      sock.write('DATA\r\n');
      await expect('354');
      // One writev, as smtp-source's buffered stream writes the message.
      sock.cork();
      for (const piece of o.body) sock.write(piece);
      sock.write('\r\n.\r\n');
      sock.uncork();
      tDot = performance.now();
      const final = await expect('250');
      const now = performance.now();
      sock.write('QUIT\r\n');
      if (!finished) {
        finished = true;
        clearTimeout(timer);
        sock.end();
        resolve({ ok: true, latencyMs: now - t0, commitMs: now - tDot, acceptedAt: now, reply: final });
      }
    })().catch((e: Error) => finish(false, e.message));
  });
}

/** The filler of each body size, built once: the load generator shares the cores it measures, so it must cost little per message. */
const fillers = new Map<number, Buffer>();
const FILL_LINE = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n';

/**
 * A message of about `size` bytes with an id header the latency sink picks up, as its header and
 * the shared filler. Not joined: a new 100 KB buffer per message was the load generator's largest
 * cost (V8 collects garbage for the external memory it adds: 0.46 ms of the generator's CPU per
 * 100 KB message, measured 2026-12-07, against smtp-source's 0.22 ms for all its work).
 */
export function makeBody(size: number, id: string, extraHeader = ''): Buffer[] {
  const head = Buffer.from(`${extraHeader}From: <bench@bench.test>\r\nTo: <sink@sink.test>\r\nSubject: bench ${id}\r\nX-Bench-Id: ${id}\r\nMessage-ID: <${id}@bench.test>\r\n\r\n`, 'latin1');
  const n = Math.max(0, size - head.length);
  // Keyed by the filler's length (ids differ in length): whole lines, the last one without its CRLF.
  let fill = fillers.get(n);
  if (!fill) {
    fill = Buffer.from(FILL_LINE.repeat(Math.ceil(n / FILL_LINE.length)).slice(0, n).replace(/\r?$/, ''), 'latin1');
    fillers.set(n, fill);
  }
  return [head, fill];
}

/**
 * A message as mail with an attachment usually is: multipart/mixed, a short text part and one
 * base64 attachment (a PDF) making up `size` octets in all; the sink's X-Bench-Id as makeBody's.
 */
/** The base64 attachment of makeMultipartBody, by its number of lines. */
const attachments = new Map<number, Buffer>();

export function makeMultipartBody(size: number, id: string): Buffer[] {
  const head = `From: <bench@bench.test>\r\nTo: <sink@sink.test>\r\nSubject: bench ${id}\r\nX-Bench-Id: ${id}\r\nMessage-ID: <${id}@bench.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="bench-${id}"\r\n\r\n--bench-${id}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe report is attached.\r\n\r\n--bench-${id}\r\nContent-Type: application/pdf; name="report.pdf"\r\nContent-Disposition: attachment; filename="report.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
  const tail = `\r\n--bench-${id}--\r\n`;
  const lines = Math.max(1, Math.floor((size - head.length - tail.length) / 78));
  let b64 = attachments.get(lines);
  if (!b64) {
    b64 = Buffer.from(Buffer.alloc(lines * 57, 0x5a).toString('base64').replace(/.{76}/g, '$&\r\n').replace(/\r\n$/, ''), 'latin1');
    attachments.set(lines, b64);
  }
  return [Buffer.from(head, 'latin1'), b64, Buffer.from(tail, 'latin1')];
}

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  seconds: number;
  latencies: number[];
  /** Per accepted message: final dot sent → 250 (SendResult.commitMs). */
  commitLatencies: number[];
  acceptedAt: Map<string, number>;
  failures: Map<string, number>;
}

/** What runLoad and runRate record of each message: latency and acceptance time, or the failure. */
class Tally {
  ok = 0;
  readonly latencies: number[] = [];
  readonly commitLatencies: number[] = [];
  readonly acceptedAt = new Map<string, number>();
  readonly failures = new Map<string, number>();
  record(id: string, r: SendResult): void {
    if (r.ok) {
      this.ok++;
      this.latencies.push(r.latencyMs);
      this.commitLatencies.push(r.commitMs);
      this.acceptedAt.set(id, r.acceptedAt + performance.timeOrigin);
    } else {
      const key = r.reply.slice(0, 60);
      this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
    }
  }
  result(sent: number, start: number): LoadResult {
    return { sent, ok: this.ok, failed: sent - this.ok, seconds: (performance.now() - start) / 1000, latencies: this.latencies, commitLatencies: this.commitLatencies, acceptedAt: this.acceptedAt, failures: this.failures };
  }
}

/** `sessions` concurrent loops, one message per connection, until `messages` are sent. */
export async function runLoad(o: Omit<SendOptions, 'body'> & { messages: number; sessions: number; size: number; localAddresses?: string[]; multipart?: boolean; /** Fields (each ending in CRLF) on top of every message. */ extraHeader?: string }): Promise<LoadResult> {
  let next = 0;
  const tally = new Tally();
  const start = performance.now();
  const loop = async (k: number) => {
    while (next < o.messages) {
      const i = next++;
      const id = `m${i}`;
      const r = await sendOne({ ...o, body: o.multipart ? makeMultipartBody(o.size, id) : makeBody(o.size, id, o.extraHeader), ...(o.localAddresses ? { localAddress: o.localAddresses[k % o.localAddresses.length]! } : {}) });
      tally.record(id, r);
    }
  };
  await Promise.all(Array.from({ length: o.sessions }, (_, k) => loop(k)));
  return tally.result(o.messages, start);
}

/**
 * Open loop: message i starts at `ratePerSec`·i after the start, on its own connection, whether
 * the ones before it are done or not (up to `maxInFlight` at once; a start that has to wait for
 * that is counted as late). Unlike runLoad's back-to-back sessions, whose latency is bound to the
 * throughput (Little's law: each of N sessions waits about N / throughput per message), this
 * measures how long a client waits at a given offered load below saturation.
 */
export async function runRate(o: Omit<SendOptions, 'body'> & { messages: number; ratePerSec: number; size: number; maxInFlight?: number }): Promise<LoadResult & { lateStarts: number }> {
  const tally = new Tally();
  const maxInFlight = o.maxInFlight ?? 200;
  let inFlight = 0;
  let lateStarts = 0;
  const start = performance.now();
  const running: Promise<void>[] = [];
  let freed: (() => void) | undefined;
  for (let i = 0; i < o.messages; i++) {
    const due = start + (i * 1000) / o.ratePerSec;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= maxInFlight) {
      lateStarts++;
      await new Promise<void>((r) => (freed = r));
    }
    inFlight++;
    const id = `m${i}`;
    running.push(
      sendOne({ ...o, body: makeBody(o.size, id) }).then((r) => {
        inFlight--;
        const f = freed;
        freed = undefined;
        f?.();
        tally.record(id, r);
      }),
    );
  }
  await Promise.all(running);
  return { ...tally.result(o.messages, start), lateStarts };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
