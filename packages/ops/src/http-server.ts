// The operations HTTP server of a mailgw process (gateway.yaml `http`): /metrics (Prometheus)
// and /healthz, open like any local scrape target; the dashboard and its small JSON API behind
// the token, with writes (retry, suspend, resume) only when allowWrite is set. node:http only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { DASHBOARD_CSS, DASHBOARD_JS } from './dashboard-client.js';
import { htmlDocument, renderFragment, renderLogin, renderPage, renderTrafficPage, type DashboardConnector, type DashboardView } from './dashboard.js';
import { summaryText } from './traffic-summary.js';
import { parseDuration } from '@mailgw/config';
import { MESSAGE_OPS, MESSAGE_ROWS_SHOWN, parseSearch, renderMessagesFragment, renderMessagesPage, type MessageOp, type MessagesView } from './dashboard-messages.js';
import { presentedToken, tokenCookie, tokenMatches } from './http-auth.js';
import type { GatewayMetrics } from './metrics.js';
import type { HeartbeatPressure } from './process-registry.js';
import type { QueueAdmin, RetryTarget } from './queue-admin.js';

export interface ConfiguredConnector {
  readonly name: string;
  readonly enabled: boolean;
  readonly usage: string;
  readonly bindings: readonly string[];
}

export interface OpsHttpOptions {
  readonly listen: { readonly address: string; readonly port: number };
  /** Dashboard token; null: the dashboard is off. */
  readonly token: string | null;
  readonly allowWrite: boolean;
  readonly metrics: GatewayMetrics;
  /** Queue actions and the Redis health check. */
  readonly admin: QueueAdmin;
  /** The configuration in force (it changes on reload). */
  readonly config: () => { readonly fqdn: string; readonly connectors: readonly ConfiguredConnector[] };
  /** More facts for /healthz (open connections, deliveries in progress; under the supervisor, of every process). */
  readonly facts?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** The gateway's back pressure (the highest of its listener processes), for /healthz and /readyz; none without a listener. */
  readonly backPressure?: () => HeartbeatPressure | null | Promise<HeartbeatPressure | null>;
  readonly logger: Logger;
}

export interface OpsHttpServer {
  /** http://host:port */
  readonly url: string;
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
} as const;
const MAX_BODY = 16 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, ...headers });
  res.end(body);
}

const json = (res: ServerResponse, status: number, value: unknown) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new HttpError(413, 'request body too large');
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new HttpError(400, 'the body must be a JSON object');
}

function hopOf(body: Record<string, unknown>): string {
  const hop = body.hop;
  if (typeof hop !== 'string' || hop.length === 0 || hop.length > 1024) throw new HttpError(400, 'give the next hop as "hop"');
  return hop;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export async function startOpsHttp(o: OpsHttpOptions): Promise<OpsHttpServer> {
  const log = o.logger.child({ component: 'http' });

  const view = async (): Promise<DashboardView> => {
    const cfg = o.config();
    const counters = await o.metrics.gatewayCounters();
    const connectors: DashboardConnector[] = cfg.connectors.map((c) => ({ ...c, counters: counters.connectors(c.name) }));
    const processes = await o.admin.processes().catch(() => null);
    const queue = await o.metrics.snapshot();
    const now = Date.now();
    if (queue.redisUp) await o.admin.sampleHopDepths(queue.hops, now).catch(() => false);
    const charts = await Promise.all([o.admin.stats('1h', now), o.admin.stats('24h', now)]).then(
      ([h, d]) => ({ '1h': h, '24h': d }),
      () => null,
    );
    const ipBlockList = await o.admin.ipBlockList.list(now).catch(() => null);
    return { fqdn: cfg.fqdn, connectors, queue, processes, charts, ipBlockList, allowWrite: o.allowWrite, now };
  };

  const messagesView = async (query: URLSearchParams): Promise<MessagesView> => {
    const now = Date.now();
    const parsed = parseSearch((k) => query.get(k) ?? undefined);
    const base = { fqdn: o.config().fqdn, allowWrite: o.allowWrite, now };
    if (!parsed.ok) return { ...base, search: {}, result: { error: parsed.error }, detail: null, timeline: null };
    if (parsed.empty) return { ...base, search: parsed.search, result: null, detail: null, timeline: null };
    const result = await o.admin.select(parsed.filter, { now, limit: MESSAGE_ROWS_SHOWN, ...(parsed.id === undefined ? {} : { id: parsed.id }) }).then(
      (r) => ({ rows: r.rows, matched: r.matched }),
      (err: unknown) => ({ error: `the queue could not be read: ${(err as Error).message}` }),
    );
    const id = parsed.id;
    const [detail, timeline] =
      id === undefined
        ? [null, null]
        : await Promise.all([
            o.admin.message(id, now).then(
              (message) => ({ id, message }),
              (err: unknown) => ({ id, error: (err as Error).message }),
            ),
            o.admin.tracking(id, now).then(
              (events) => ({ id, events }),
              (err: unknown) => ({ id, error: (err as Error).message }),
            ),
          ]);
    return { ...base, search: parsed.search, result, detail, timeline };
  };

  /** A bulk action of the message view, on the messages matching the search now (they must be as many as the page showed). */
  const actOnMessages = async (body: Record<string, unknown>): Promise<string> => {
    const op = body.op;
    if (typeof op !== 'string' || !(MESSAGE_OPS as readonly string[]).includes(op)) throw new HttpError(400, `op must be one of ${MESSAGE_OPS.join(', ')}`);
    const search = body.search;
    if (!search || typeof search !== 'object' || Array.isArray(search)) throw new HttpError(400, 'give the search as "search"');
    const parsed = parseSearch((k) => (search as Record<string, unknown>)[k]);
    if (!parsed.ok) throw new HttpError(400, parsed.error);
    if (parsed.empty) throw new HttpError(400, 'a bulk action needs a search (sender, recipient, queue id or status)');
    const expect = body.expect;
    if (typeof expect !== 'number' || !Number.isSafeInteger(expect) || expect < 1) throw new HttpError(400, 'give the number of messages confirmed as "expect"');
    // Only the ids are needed (with a filter, select counts every match whatever the limit).
    const ids = (await o.admin.select(parsed.filter, { limit: 0, ...(parsed.id === undefined ? {} : { id: parsed.id }) })).ids;
    // The queue moves: act only on what the admin saw and confirmed.
    if (ids.length !== expect) throw new HttpError(409, `${plural(ids.length, 'message')} match now, not ${expect}: search again`);
    const n = (k: number) => plural(k, 'message');
    const skipped = (s: ReadonlyArray<{ readonly why: string }>) => (s.length ? `; skipped ${s.length} (${s[0]!.why})` : '');
    switch (op as MessageOp) {
      case 'remove':
      case 'remove-ndr': {
        const res = await o.admin.removeMessages(ids, { withNdr: op === 'remove-ndr' });
        return `Removed ${n(res.done.length)}${op === 'remove-ndr' ? `, ${plural(res.ndrs.length, 'NDR')} sent` : ' without NDR'}${skipped(res.skipped)}`;
      }
      case 'suspend': {
        const res = await o.admin.suspendMessages(ids);
        return `Suspended ${n(res.done.length)}${skipped(res.skipped)}`;
      }
      case 'resume': {
        const res = await o.admin.resumeMessages(ids);
        return `Resumed ${n(res.done.length)}${skipped(res.skipped)}`;
      }
      case 'retry': {
        const res = await o.admin.retryMessages(ids);
        return `Retried ${n(res.done.length)}${skipped(res.skipped)}`;
      }
    }
  };

  const act = async (action: string, body: Record<string, unknown>): Promise<string> => {
    switch (action) {
      case 'messages':
        return actOnMessages(body);
      case 'retry': {
        const target: RetryTarget = body.all === true ? { all: true } : typeof body.id === 'string' ? { id: body.id } : { hop: hopOf(body) };
        const r = await o.admin.retry(target);
        const what = 'all' in target ? 'in all queues' : 'id' in target ? target.id : `for ${target.hop}`;
        return `Retried ${plural(r.retried.length, 'message')} ${what}${r.skipped.length ? ` (${r.skipped.length} skipped: ${r.skipped[0]!.why})` : ''}`;
      }
      case 'suspend': {
        const hop = hopOf(body);
        await o.admin.suspend(hop);
        return `Suspended ${hop}`;
      }
      case 'resume': {
        const hop = hopOf(body);
        const r = await o.admin.resume(hop);
        return `Resumed ${hop}; retried ${plural(r.retried.retried.length, 'message')}`;
      }
      case 'ip-block-list/add': {
        // An admin's entry (Add-IPBlockListEntry): { range, hours?, comment? }.
        const range = typeof body.range === 'string' ? body.range : '';
        const hours = body.hours === undefined ? null : Number(body.hours);
        if (hours !== null && (!Number.isFinite(hours) || hours <= 0)) throw new HttpError(400, 'hours is a positive number (leave it out: until removed)');
        const comment = typeof body.comment === 'string' ? body.comment.slice(0, 200) : '';
        let e;
        try {
          e = await o.admin.ipBlockList.add({ range, kind: 'static', expiresAt: hours === null ? null : Date.now() + hours * 3_600_000, comment });
        } catch (err) {
          throw new HttpError(400, `"${range}" is not an address or range: ${(err as Error).message}`);
        }
        return `${e.range} is on the IP Block List${e.expiresAt === null ? '' : ` until ${new Date(e.expiresAt).toISOString()}`}`;
      }
      case 'ip-block-list/remove': {
        const range = typeof body.range === 'string' ? body.range : '';
        if (!(await o.admin.ipBlockList.remove(range))) throw new HttpError(404, `${range || '(no range)'} is not an entry of the IP Block List`);
        return `${range} is off the IP Block List`;
      }
      default:
        throw new HttpError(404, `no action ${action}`);
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://mailgw.invalid');
    } catch {
      throw new HttpError(400, 'malformed request URL'); // a client's mistake, not a server error
    }
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /metrics') {
      return send(res, 200, o.metrics.registry.contentType, await o.metrics.text());
    }
    if (route === 'GET /healthz' || route === 'GET /readyz') {
      const [facts, pressure] = await Promise.all([o.facts?.(), o.backPressure?.() ?? null]);
      const bp = pressure ? { backPressure: pressure.level, backPressureReason: pressure.reason } : {};
      let redisError: string | null = null;
      try {
        await o.admin.ping();
      } catch (err) {
        redisError = (err as Error).message;
      }
      // /healthz: is the process alive and does it reach Redis (a restart helps when not).
      // /readyz: does it take mail now; not at back pressure high (a restart would not help).
      if (route === 'GET /healthz') {
        return redisError === null ? json(res, 200, { status: 'ok', redis: 'up', ...bp, ...facts }) : json(res, 503, { status: 'fail', redis: 'down', error: redisError, ...bp, ...facts });
      }
      if (redisError !== null) return json(res, 503, { status: 'not ready', why: `Redis does not answer: ${redisError}`, redis: 'down', ...bp });
      if (pressure?.level === 'high') return json(res, 503, { status: 'not ready', why: `back pressure high: all new mail is refused (452 4.3.1): ${pressure.reason}`, redis: 'up', ...bp });
      return json(res, 200, { status: 'ready', redis: 'up', ...bp });
    }
    if (route === 'GET /dashboard.js') return send(res, 200, 'text/javascript; charset=utf-8', DASHBOARD_JS);
    if (route === 'GET /dashboard.css') return send(res, 200, 'text/css; charset=utf-8', DASHBOARD_CSS);

    const dashboard = ['GET /', 'GET /fragment', 'GET /messages', 'GET /traffic', 'GET /api/state', 'GET /api/stats', 'GET /api/traffic', 'GET /api/ip-block-list'].includes(route) || (req.method === 'POST' && url.pathname.startsWith('/api/'));
    if (!dashboard) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    if (o.token === null) return send(res, 404, 'text/plain; charset=utf-8', 'the dashboard is off: set http.token in gateway.yaml\n');

    // `/?token=…` from the sign-in form or a bookmark: set the cookie and drop the token from the URL.
    const query = url.searchParams.get('token');
    if (route === 'GET /' && query !== null) {
      if (!tokenMatches(query, o.token)) return send(res, 401, 'text/html; charset=utf-8', renderLogin('Wrong token.'));
      return send(res, 303, 'text/plain; charset=utf-8', 'signed in\n', { location: './', 'set-cookie': tokenCookie(o.token) });
    }
    if (!tokenMatches(presentedToken(req), o.token)) {
      if (route === 'GET /') return send(res, 401, 'text/html; charset=utf-8', renderLogin(null));
      return json(res, 401, { error: 'a valid token is required' });
    }
    if (route === 'GET /') return send(res, 200, 'text/html; charset=utf-8', renderPage(await view()));
    if (route === 'GET /fragment') return send(res, 200, 'text/html; charset=utf-8', renderFragment(await view()));
    if (route === 'GET /messages') {
      const mv = await messagesView(url.searchParams);
      if (url.searchParams.get('fragment') === '1') return send(res, 200, 'text/html; charset=utf-8', renderMessagesFragment(mv));
      return send(res, 200, 'text/html; charset=utf-8', renderMessagesPage(mv, htmlDocument));
    }
    if (route === 'GET /api/state') {
      const v = await view();
      return json(res, 200, { fqdn: v.fqdn, allowWrite: v.allowWrite, connectors: v.connectors, queue: v.queue, processes: v.processes });
    }
    if (route === 'GET /api/stats') {
      const range = url.searchParams.get('range') ?? '1h';
      if (range !== '1h' && range !== '24h') return json(res, 400, { error: 'range is 1h or 24h' });
      return json(res, 200, await o.admin.stats(range));
    }
    if (route === 'GET /traffic' || route === 'GET /api/traffic') {
      const text = url.searchParams.get('since') ?? '1d';
      const d = parseDuration(text);
      if (!d.ok || d.value <= 0 || d.value > 31 * 86_400_000) {
        const why = `since is a duration back from now, up to 31d (1h, 1d, 7d), not "${text.slice(0, 40)}"`;
        return route === 'GET /api/traffic' ? json(res, 400, { error: why }) : send(res, 400, 'text/plain; charset=utf-8', `${why}\n`);
      }
      const now = Date.now();
      const { summary, where } = await o.admin.traffic(new Date(now - d.value), now);
      if (route === 'GET /api/traffic') return json(res, 200, summary);
      return send(res, 200, 'text/html; charset=utf-8', renderTrafficPage({ fqdn: o.config().fqdn, allowWrite: o.allowWrite, since: text, text: summaryText(summary, where) }));
    }
    if (route === 'GET /api/ip-block-list') return json(res, 200, { entries: await o.admin.ipBlockList.list() });
    // POST /api/<action>
    if (!o.allowWrite) return json(res, 403, { error: 'the dashboard is read-only (http.allowWrite is false)' });
    // A cross-site form cannot send a custom header; together with SameSite=Strict this stops CSRF.
    if (req.headers['x-mailgw-action'] !== '1') return json(res, 403, { error: 'missing x-mailgw-action header' });
    const action = url.pathname.slice('/api/'.length);
    const body = await readJson(req);
    const message = await act(action, body);
    o.metrics.invalidate();
    log.info({ action, body, message }, 'dashboard action');
    return json(res, 200, { message });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) log.error({ err, url: req.url }, 'HTTP request failed');
      if (!res.headersSent) json(res, status, { error: (err as Error).message });
      else res.destroy();
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const { address, port } = o.listen;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  const url = `http://${host}:${a.port}`;
  const loopback = /^(127\.|::1$|::ffff:127\.)/.test(a.address);
  log.info({ url, dashboard: o.token !== null, allowWrite: o.allowWrite }, `operations HTTP server on ${url}`);
  if (!loopback) log.warn({ url }, 'the operations HTTP server listens beyond loopback: /metrics and /healthz need no token');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
