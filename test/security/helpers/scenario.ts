// Fault scenarios: a load of numbered messages sent by several SMTP clients (retrying what was
// not accepted, as real clients do), and the accounting that compares what the clients were
// told (250 or not) with what reached the far side:
//
//   sent=2000 accepted=2000 delivered=2000 lost=0 duplicated=3
//
// sent: distinct messages; accepted: messages that got a 250 (at some attempt); delivered:
// distinct messages that reached the far side complete; lost: accepted but never delivered
// (must be 0); duplicated: extra copies delivered (at-least-once delivery allows them: they are
// counted and listed, not hidden). Every message carries its id and a hash of its body, so a
// truncated or half-stored message that is delivered is caught too (incomplete, must be 0).
import { createHash } from 'node:crypto';
import { RawSmtp, SmtpClosedError } from '../../listener/helpers/smtp-client.js';

export interface LoadOptions {
  host: string;
  port: number;
  clients: number;
  messages: number;
  /** Client address of client k (loopback 127.0.0.x). */
  localAddress?: (client: number) => string;
  /** Recipient of message n. */
  rcpt: (n: number) => string;
  sender?: string;
  /** Body size of message n (default ~1 KB). */
  size?: (n: number) => number;
  /** Attempts per message before the client gives up (default 200). */
  maxAttempts?: number;
  /** Pause after a 4xx or a lost connection (default 100 ms). */
  retryDelayMs?: number;
  /** A reply that takes longer is a hang (default 20 s). */
  replyTimeoutMs?: number;
  /** Called after every 250 with the number accepted so far. */
  onAccepted?: (accepted: number) => void;
  /** Called before each message's DATA is sent (for faults timed by the client). */
  onData?: (n: number) => void;
}

/** What one attempt ended with: a reply line, or what happened to the connection ("closed", "timeout", with AFTER_DATA when the body had been sent). */
export type Outcome = string;

/** Suffix of an outcome whose connection was lost (or timed out) after the whole body had been sent. */
export const AFTER_DATA = ' after the data';

export interface LoadResult {
  readonly ids: string[];
  /** Outcomes of every attempt, per message id. */
  readonly attempts: Map<string, Outcome[]>;
  readonly accepted: Set<string>;
  readonly ms: number;
}

export const loadId = (n: number) => `m${String(n).padStart(5, '0')}`;

/** A message whose header names its id and the SHA-256 of its body, so the far side can check it arrived whole. */
export function loadMessage(id: string, size: number): Buffer {
  const lines: string[] = [];
  let len = 0;
  for (let i = 0; len < size; i++) {
    const l = `${id} line ${String(i).padStart(7, '0')} ${'x'.repeat(60)}\r\n`;
    lines.push(l);
    len += l.length;
  }
  lines.push(`END ${id}\r\n`);
  const body = lines.join('');
  const hash = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`From: <load@example.net>\r\nTo: <sink@contoso.test>\r\nSubject: load ${id}\r\nMessage-ID: <${id}@load.test>\r\nX-Load-Id: ${id}\r\nX-Load-Hash: ${hash}\r\n\r\n${body}`, 'latin1');
}

/** The id of a delivered message and whether its body is the one sent, whole. */
export function inspectDelivered(raw: Buffer): { id: string | null; complete: boolean } {
  const text = raw.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  const id = /\r\nX-Load-Id: (\S+)/.exec(`\r\n${head}`)?.[1] ?? null;
  const hash = /\r\nX-Load-Hash: (\S+)/.exec(`\r\n${head}`)?.[1];
  if (split < 0 || !id || !hash) return { id, complete: false };
  const body = text.slice(split + 4);
  return { id, complete: createHash('sha256').update(body, 'latin1').digest('hex') === hash && body.endsWith(`END ${id}\r\n`) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Timeout extends Error {}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Timeout()), ms)))]).finally(() => clearTimeout(t));
}

/** Sends `messages` numbered messages from `clients` clients; each message is retried until it gets a 250 or maxAttempts. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const t0 = Date.now();
  const ids = Array.from({ length: o.messages }, (_, n) => loadId(n));
  const attempts = new Map<string, Outcome[]>(ids.map((id) => [id, []]));
  const accepted = new Set<string>();
  const maxAttempts = o.maxAttempts ?? 200;
  const retryDelay = o.retryDelayMs ?? 100;
  const replyTimeout = o.replyTimeoutMs ?? 20_000;
  const sender = o.sender ?? 'load@example.net';

  async function client(k: number): Promise<void> {
    let c: RawSmtp | null = null;
    let dataSent = false;
    const drop = () => {
      c?.destroy();
      c = null;
    };
    for (let n = k; n < o.messages; n += o.clients) {
      const id = loadId(n);
      const body = loadMessage(id, o.size?.(n) ?? 1000);
      const record = (x: Outcome) => attempts.get(id)!.push(x);
      for (let attempt = 0; attempt < maxAttempts && !accepted.has(id); attempt++) {
        try {
          if (!c) {
            c = await within(RawSmtp.connect({ host: o.host, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress(k) } : {}) }), replyTimeout);
            const ehlo = await within(c.ehlo(), replyTimeout);
            if (ehlo.code !== 250) throw new SmtpClosedError(`EHLO ${ehlo.last}`);
          }
          const conn: RawSmtp = c;
          const step = async (line: string, ok: number): Promise<string | null> => {
            const r = await within(conn.cmd(line), replyTimeout);
            return r.code === ok ? null : r.last;
          };
          dataSent = false;
          let final = (await step(`MAIL FROM:<${sender}>`, 250)) ?? (await step(`RCPT TO:<${o.rcpt(n)}>`, 250)) ?? (await step('DATA', 354));
          if (final === null) {
            o.onData?.(n);
            dataSent = true;
            conn.write(body);
            conn.write('.\r\n');
            final = (await within(conn.read(), replyTimeout)).last;
          }
          record(final);
          if (final.startsWith('250')) {
            accepted.add(id);
            o.onAccepted?.(accepted.size);
          } else if (final.startsWith('421')) {
            drop();
            await sleep(retryDelay);
          } else {
            await within(conn.cmd('RSET'), replyTimeout).catch(() => drop());
            if (final.startsWith('5')) break; // a permanent refusal: the client gives up
            await sleep(retryDelay);
          }
        } catch (e) {
          // After the final dot the gateway may have stored the message before the connection
          // went: the client never hears the 250 and sends again (RFC 5321 6.1's duplicate).
          const when = dataSent ? AFTER_DATA : '';
          if (e instanceof Timeout) record(`timeout${when}`);
          else if (e instanceof SmtpClosedError) record(`closed${when}`);
          else record(`connect-error:${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
          drop();
          await sleep(retryDelay);
        }
      }
    }
    if (c) await (c as RawSmtp).quit().catch(() => undefined);
  }

  await Promise.all(Array.from({ length: o.clients }, (_, k) => client(k)));
  return { ids, attempts, accepted, ms: Date.now() - t0 };
}

export interface Accounting {
  sent: number;
  accepted: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Delivered although the client never got a 250 for it (the client's retry may duplicate it). */
  deliveredWithout250: number;
  /** Delivered copies that are not whole. */
  incomplete: number;
  lostIds: string[];
  duplicateIds: string[];
  line: string;
}

export function account(load: LoadResult, deliveredRaw: readonly Buffer[]): Accounting {
  const copies = new Map<string, number>();
  let incomplete = 0;
  for (const raw of deliveredRaw) {
    const d = inspectDelivered(raw);
    if (!d.complete || !d.id) {
      incomplete++;
      continue;
    }
    copies.set(d.id, (copies.get(d.id) ?? 0) + 1);
  }
  const lostIds = [...load.accepted].filter((id) => !copies.has(id)).sort();
  const duplicateIds = [...copies].filter(([, n]) => n > 1).map(([id, n]) => `${id}×${n}`).sort();
  const duplicated = [...copies.values()].reduce((a, n) => a + n - 1, 0);
  const a = {
    sent: load.ids.length,
    accepted: load.accepted.size,
    delivered: copies.size,
    lost: lostIds.length,
    duplicated,
    deliveredWithout250: [...copies.keys()].filter((id) => !load.accepted.has(id)).length,
    incomplete,
    lostIds,
    duplicateIds,
  };
  return {
    ...a,
    line: `sent=${a.sent} accepted=${a.accepted} delivered=${a.delivered} lost=${a.lost} duplicated=${a.duplicated}` + (a.deliveredWithout250 ? ` delivered-without-250=${a.deliveredWithout250}` : '') + (a.incomplete ? ` incomplete=${a.incomplete}` : ''),
  };
}

/**
 * Duplicated messages that no lost 250 explains. A copy too many is allowed only for a message
 * one of whose attempts lost its connection after the final dot (the gateway may have stored it
 * and the client sent it again); any other duplicate means a delivery was repeated.
 */
export function unexplainedDuplicates(a: Accounting, load: LoadResult): string[] {
  return a.duplicateIds.filter((d) => !(load.attempts.get(d.slice(0, d.indexOf('×'))) ?? []).some((x) => x.endsWith(AFTER_DATA)));
}

/** Outcome texts other than 250, counted: "451 4.3.0 …" ×12, "closed" ×3. */
export function refusals(load: LoadResult): Map<string, number> {
  const m = new Map<string, number>();
  for (const list of load.attempts.values()) for (const x of list) if (!x.startsWith('250')) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

/** Prints the accounting line (and what was lost or duplicated) for the test log. */
export function report(name: string, a: Accounting, load: LoadResult): void {
  console.log(`# ${name}: ${a.line} (${load.ms} ms)`);
  const r = refusals(load);
  if (r.size) console.log(`#   not accepted at first: ${[...r].map(([k, n]) => `${JSON.stringify(k)}×${n}`).join(', ')}`);
  if (a.duplicateIds.length) console.log(`#   duplicates: ${a.duplicateIds.join(' ')}`);
  if (a.lostIds.length) console.log(`#   LOST: ${a.lostIds.join(' ')}`);
}

/** Polls `check` until it returns true (every 100 ms, at most `ms`). */
export async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(100);
  }
  return check();
}
