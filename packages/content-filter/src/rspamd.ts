// rspamd as a message filter, over its HTTP protocol: one POST /checkv2 per message with the
// envelope as request headers (IP, Helo, From, Rcpt per recipient, User, Queue-Id, Hostname),
// the message streamed as DATA arrives (a chunked request: nothing is buffered here), and the
// JSON answer turned into an outcome by the policy (rspamdDecision: rspamd's action, or
// Exchange's SCL thresholds). Headers: X-Spam-Status/-Score/-Action, what rspamd's
// milter_headers module asks for (milter.add_headers / remove_headers), the rewritten
// Subject, and X-MS-Exchange-Organization-SCL. Down, slow or nonsense → "error" (the
// configured failure action applies); never an exception.
import http from 'node:http';
import https from 'node:https';
import type { RspamdConfig } from '@mailgw/config';
import { drained, formatAddress, type FilterContext, type FilterOutcome, type HeaderEdit, type HeaderField, type MessageOnlyFilter, type MessageFilterSession } from '@mailgw/mail';
import { SCL_HEADER, contentFilterBypass, rspamdDecision } from '@mailgw/policy';

/** The part of rspamd's /checkv2 answer we read. */
interface CheckV2 {
  action: string;
  score: number;
  required_score?: number;
  subject?: string;
  symbols?: Record<string, { score?: number }>;
  messages?: { smtp_message?: string };
  milter?: {
    add_headers?: Record<string, unknown>;
    remove_headers?: Record<string, unknown>;
  };
}

/** Fields mailgw owns: rspamd's milter_headers may not remove them (sender authentication adds its own Authentication-Results). */
const PROTECTED = new Set(['authentication-results', 'x-ms-exchange-organization-scl']);
const SPAM_HEADERS = ['X-Spam-Status', 'X-Spam-Score', 'X-Spam-Action'];

/** An rspamd filter for `cfg` (gateway.yaml `rspamd`). */
export function rspamdFilter(cfg: RspamdConfig, name = 'rspamd'): MessageOnlyFilter {
  const url = new URL('/checkv2', cfg.url);
  const lib = url.protocol === 'https:' ? https : http;
  const agent = new lib.Agent({ keepAlive: true, maxSockets: 64 });
  return {
    name,
    antiSpam: true,
    onFailure: cfg.onFailure,
    connectors: cfg.connectors,
    begin: (ctx) => {
      // Set-ContentFilterConfig's bypass lists: such a message is not sent to rspamd at all.
      const bypassed = contentFilterBypass(cfg, ctx.sender, ctx.recipients);
      return bypassed ? bypassedSession(name, bypassed) : new RspamdSession(name, cfg, lib, agent, url, ctx);
    },
  };
}

/** A message the bypass lists spare: read nothing, accept it, say why. */
function bypassedSession(name: string, why: string): MessageFilterSession {
  return {
    header: () => undefined,
    body: () => undefined,
    end: () => Promise.resolve({ filter: name, verdict: 'accept', headers: [], reason: `not judged: ${why}` }),
    abort: () => undefined,
  };
}

function requestHeaders(cfg: RspamdConfig, ctx: FilterContext): http.OutgoingHttpHeaders {
  const h: http.OutgoingHttpHeaders = {
    'Content-Type': 'message/rfc822',
    IP: ctx.clientIP,
    Helo: ctx.helo,
    From: ctx.sender ? formatAddress(ctx.sender) : '<>',
    'Queue-Id': ctx.queueId,
    Hostname: ctx.clientHostname.startsWith('[') ? 'unknown' : ctx.clientHostname,
    'MTA-Name': ctx.fqdn,
  };
  if (ctx.recipients.length) h.Rcpt = ctx.recipients.map((r) => formatAddress(r));
  if (ctx.authUser) h.User = ctx.authUser;
  if (ctx.tls) {
    h['TLS-Version'] = ctx.tls.protocol;
    h['TLS-Cipher'] = ctx.tls.cipher;
  }
  if (cfg.password) h.Password = cfg.password;
  // Header values must be latin1 without CR/LF (a HELO is checked by the listener, but be sure).
  for (const [k, v] of Object.entries(h)) {
    const clean = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');
    h[k] = Array.isArray(v) ? v.map(clean) : clean(String(v));
  }
  return h;
}

class RspamdSession implements MessageFilterSession {
  private readonly req: http.ClientRequest;
  private failure: string | null = null;
  private response: Promise<{ status: number; body: string }>;
  private connectTimer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    private readonly name: string,
    private readonly cfg: RspamdConfig,
    lib: typeof http | typeof https,
    agent: http.Agent,
    url: URL,
    ctx: FilterContext,
  ) {
    this.req = lib.request(url, { method: 'POST', agent, headers: requestHeaders(cfg, ctx) });
    this.req.on('socket', (s) => {
      if (!s.connecting) return;
      this.connectTimer = setTimeout(() => this.fail(`could not connect to rspamd at ${cfg.url} within ${cfg.connectTimeout} ms`), cfg.connectTimeout);
      s.once('connect', () => clearTimeout(this.connectTimer));
    });
    this.response = new Promise((resolve, reject) => {
      this.req.on('response', (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
        res.on('error', reject);
      });
      this.req.on('error', (e) => {
        this.failure ??= `rspamd at ${cfg.url}: ${e.message}`;
        reject(e);
      });
    });
    this.response.catch(() => undefined); // observed in end()
  }

  private fail(why: string): void {
    this.failure ??= why;
    clearTimeout(this.connectTimer);
    this.req.destroy(new Error(why));
  }

  private write(data: Buffer): void | Promise<void> {
    if (this.failure || this.done) return;
    if (this.req.write(data)) return;
    return drained(this.req);
  }

  header(fields: readonly HeaderField[]): void | Promise<void> {
    return this.write(Buffer.concat([...fields.map((f) => (f.raw.subarray(-2).toString('latin1') === '\r\n' ? f.raw : Buffer.concat([f.raw, Buffer.from('\r\n')]))), Buffer.from('\r\n')]));
  }

  body(chunk: Buffer): void | Promise<void> {
    return this.write(chunk);
  }

  abort(): void {
    this.done = true;
    clearTimeout(this.connectTimer);
    this.req.destroy();
  }

  async end(): Promise<FilterOutcome> {
    const error = (reason: string): FilterOutcome => ({ filter: this.name, verdict: 'error', headers: [], reason });
    if (this.failure) {
      this.abort();
      return error(this.failure);
    }
    this.done = true;
    this.req.end();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from rspamd at ${this.cfg.url} within ${this.cfg.timeout} ms`)), this.cfg.timeout);
    });
    let res: { status: number; body: string };
    try {
      res = await Promise.race([this.response, timeout]);
    } catch (e) {
      this.req.destroy();
      return error(this.failure ?? (e instanceof Error ? e.message : String(e)));
    } finally {
      clearTimeout(timer);
      clearTimeout(this.connectTimer);
    }
    if (res.status !== 200) return error(`rspamd answered HTTP ${res.status}: ${res.body.slice(0, 200)}`);
    let answer: CheckV2;
    try {
      answer = JSON.parse(res.body) as CheckV2;
    } catch {
      return error(`rspamd's answer is not JSON: ${res.body.slice(0, 200)}`);
    }
    if (typeof answer?.action !== 'string' || typeof answer.score !== 'number') return error(`rspamd's answer has no action/score: ${res.body.slice(0, 200)}`);
    return this.outcome(answer);
  }

  private outcome(a: CheckV2): FilterOutcome {
    const required = typeof a.required_score === 'number' ? a.required_score : 0;
    const d = rspamdDecision({ action: a.action, score: a.score, requiredScore: required, subject: a.subject }, this.cfg);
    const headers: HeaderEdit[] = [];
    if (this.cfg.spamHeaders) {
      const spam = a.action === 'reject' || a.action === 'add header' || a.action === 'rewrite subject';
      // A sender's own X-Spam-* fields would pass for ours downstream: replaced, not added to.
      for (const n of SPAM_HEADERS) headers.push({ op: 'remove', name: n });
      headers.push({ op: 'add', name: 'X-Spam-Status', value: `${spam ? 'Yes' : 'No'}, score=${a.score.toFixed(2)} required=${required.toFixed(2)}` });
      headers.push({ op: 'add', name: 'X-Spam-Score', value: a.score.toFixed(2) });
      headers.push({ op: 'add', name: 'X-Spam-Action', value: a.action });
      headers.push(...milterHeaders(a.milter));
    }
    if (d.subject !== undefined && d.subject !== '') headers.push({ op: 'change', name: 'Subject', index: 1, value: d.subject });
    if (this.cfg.stampScl) {
      headers.push({ op: 'remove', name: SCL_HEADER });
      headers.push({ op: 'add', name: SCL_HEADER, value: String(d.scl) });
    }
    const symbols = Object.keys(a.symbols ?? {}).slice(0, 20).join(', ');
    return { filter: this.name, verdict: d.verdict, reply: d.reply, headers, reason: `${d.reason.message}${symbols ? ` [${symbols}]` : ''}`, scl: d.scl };
  }
}

/** rspamd's milter.remove_headers (name → 0 for all, n for the n-th) and add_headers (name → value | {value, order} | list). */
function milterHeaders(m: CheckV2['milter']): HeaderEdit[] {
  const out: HeaderEdit[] = [];
  for (const [name, idx] of Object.entries(m?.remove_headers ?? {})) {
    if (PROTECTED.has(name.toLowerCase())) continue;
    const n = typeof idx === 'number' ? idx : 0;
    out.push(n > 0 ? { op: 'remove', name, index: n } : { op: 'remove', name });
  }
  const one = (name: string, v: unknown) => {
    if (typeof v === 'string') out.push({ op: 'add', name, value: v });
    else if (v && typeof v === 'object' && typeof (v as { value?: unknown }).value === 'string') {
      const order = (v as { order?: unknown }).order;
      out.push({ op: 'add', name, value: (v as { value: string }).value, ...(typeof order === 'number' && order >= 0 ? { top: true } : {}) });
    }
  };
  for (const [name, v] of Object.entries(m?.add_headers ?? {})) {
    if (Array.isArray(v)) v.forEach((x) => one(name, x));
    else one(name, v);
  }
  return out;
}
