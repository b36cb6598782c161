/**
 * Far sides for outbound TLS tests: SMTP servers on 127.0.0.1 with or without STARTTLS, the
 * HTTPS server of mta-sts.<domain>, a send connector for MX delivery, a logger the test reads.
 */
import { createServer, type Server } from 'node:https';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { compileSendConnector, formatIssue, sendConnectorSchema, type SendConnector } from '@mailgw/config';
import type { KeyPair } from './test-ca.js';

export interface Far {
  readonly port: number;
  readonly got: Array<{ rcptTo: string[]; secure: boolean }>;
  /** The server names (SNI) the TLS sessions that delivered asked for. */
  readonly servernames: string[];
  close(): Promise<void>;
}

/** An SMTP far side on 127.0.0.1: STARTTLS with `tls` (else no STARTTLS at all). */
export async function startFar(tls?: KeyPair): Promise<Far> {
  const got: Far['got'] = [];
  const servernames: string[] = [];
  const server = new SMTPServer({
    disableReverseLookup: true,
    logger: false,
    authOptional: true,
    ...(tls ? { key: tls.key, cert: tls.cert } : { hideSTARTTLS: true }),
    disabledCommands: ['AUTH', ...(tls ? [] : ['STARTTLS'])],
    onData(stream, session: SMTPServerSession, cb) {
      stream.resume();
      stream.on('end', () => {
        got.push({ rcptTo: session.envelope.rcptTo.map((r) => r.address), secure: session.secure });
        if (session.servername) servernames.push(session.servername);
        cb(null, '2.0.0 queued');
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const a = server.server.address();
  return { port: typeof a === 'object' && a ? a.port : 0, got, servernames, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

export interface PolicyServer {
  readonly port: number;
  /** Policy text per domain (the Host header is mta-sts.<domain>); absent: 404. */
  readonly policies: Map<string, string>;
  /** GETs seen per domain. */
  readonly fetches: Map<string, number>;
  close(): Promise<void>;
}

/** The HTTPS server of mta-sts.<domain> for every domain, on 127.0.0.1 with a certificate from the test CA. */
export async function startPolicyServer(cert: KeyPair): Promise<PolicyServer> {
  const policies = new Map<string, string>();
  const fetches = new Map<string, number>();
  const server: Server = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    const domain = String(req.headers.host ?? '').replace(/:\d+$/, '').replace(/^mta-sts\./, '');
    fetches.set(domain, (fetches.get(domain) ?? 0) + 1);
    const text = policies.get(domain);
    if (req.url !== '/.well-known/mta-sts.txt' || text === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const a = server.address();
  return {
    port: typeof a === 'object' && a ? a.port : 0,
    policies,
    fetches,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export function connector(data: Record<string, unknown> = {}): SendConnector {
  const parsed = sendConnectorSchema.safeParse({ name: 'Internet', addressSpaces: ['*'], dnsRoutingEnabled: true, ...data });
  if (!parsed.success) throw new Error(JSON.stringify(parsed.error.issues));
  const c = compileSendConnector(parsed.data, { file: 'send-connectors.d/internet.yaml', secrets: 'resolve', env: {}, readReferenced: (p) => ({ ok: false, error: p, file: p }) });
  if (!c.ok) throw new Error(c.errors.map(formatIssue).join('\n'));
  return c.connector as SendConnector;
}

/** A pino logger whose lines the test reads. */
export function capturedLogger(level: pino.Level = 'debug'): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level }, sink), lines };
}

