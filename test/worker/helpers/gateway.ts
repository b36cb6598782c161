/** Building blocks for worker tests: a gateway config, messages put in the queue, mailboxes read back. */
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { compileRoutes, formatIssue, gatewaySchema, routeConnectors, type Env, type GatewayConfig, type GatewayInput, type SendConnector } from '@mailgw/config';
import { parseEnvelopeAddress, type MailAddress, type Reply } from '@mailgw/mail';
import { newQueueId, type CommitInput, type MailStore } from '@mailgw/queue';
import { startWorkers, type WorkerHandle } from '@mailgw/worker';
import { pino } from 'pino';

/** A fresh key prefix per test (a hash tag, like the default). */
export function randomPrefix(): string {
  return `{w${randomBytes(6).toString('hex')}}`;
}

/** Queue timings short enough for tests (retries in a fraction of a second). */
export const FAST_QUEUE = {
  transientRetryAttempts: 2,
  transientRetryInterval: '300ms',
  messageRetryInterval: '600ms',
  outboundConnectionFailureRetryInterval: '600ms',
  delayNotificationTimeout: '1h',
  messageExpirationTimeout: '1h',
  lockDuration: '2s',
  stalledInterval: '1s',
  drainTimeout: '10s',
} as const;

/**
 * A validated gateway config without files; routes compiled as loadConfig does (relative
 * maildir: paths from `baseDir`, default '/'; auth.passEnv from `env`, default none set).
 */
export function testGateway(input: Partial<GatewayInput> & { prefix?: string; env?: Env; baseDir?: string; sendConnectors?: readonly SendConnector[] } = {}): GatewayConfig {
  const { prefix, env, baseDir, sendConnectors, ...rest } = input;
  const g = gatewaySchema.parse({
    acceptedDomains: [{ domain: 'contoso.test', default: true }],
    queue: FAST_QUEUE,
    redis: { prefix: prefix ?? randomPrefix() },
    ...rest,
  });
  const routes = compileRoutes(g.routes, { file: 'gateway.yaml', baseDir: baseDir ?? '/', secrets: 'resolve', env: env ?? {} });
  if (!routes.ok) throw new Error(routes.errors.map(formatIssue).join('\n'));
  // Bounce verification's secret from the environment given (keyEnv), as buildConfig reads it.
  const bv = g.bounceVerification;
  const bounceVerification = bv ? { mode: bv.mode, maxAgeDays: bv.maxAgeDays, bypassedRecipients: bv.bypassedRecipients, key: (env ?? {})[bv.keyEnv ?? ''] ?? '' } : undefined;
  return { ...g, fqdn: 'mail.contoso.test', recipients: null, recipientsFromDirectory: false, directory: null, bounceVerification, users: [], defaultDomain: 'contoso.test', routes: routes.routes, sendConnectors: [...(sendConnectors ?? []), ...routeConnectors(routes.routes)] };
}

export type RcptSpec = string | { address: string; notify?: Array<'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY'>; orcpt?: string };

export interface EnqueueOptions {
  from: string;
  to: RcptSpec[];
  body: Buffer | string;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  receivedAt?: Date;
  queueId?: string;
  /** Received with SMTPUTF8 (the job's mailFrom.smtpUtf8). */
  smtpUtf8?: boolean;
  /** BODY= of MAIL (the job's mailFrom.body). */
  bodyType?: '7BIT' | '8BITMIME' | 'BINARYMIME';
  /** Recipients (indexes in `to`) failed at intake with this reply (the listener's recipient size limit). */
  failedRecipients?: Array<{ index: number; reply: Reply }>;
}

/** An address as the job keeps it (parts), parsed as the listener parses it. */
export function parts(text: string): MailAddress {
  const p = parseEnvelopeAddress(text);
  if (!p.ok) throw new Error(`test address ${text}: ${p.reason}`);
  return { local: p.value.local, domain: p.value.domain };
}

/** Puts a message in the queue exactly as a listener does (@mailgw/queue). */
export async function enqueue(store: MailStore, o: EnqueueOptions): Promise<string> {
  const queueId = o.queueId ?? newQueueId();
  const body = typeof o.body === 'string' ? Buffer.from(o.body) : o.body;
  const w = store.beginMessage(queueId);
  await w.write(body);
  const input: CommitInput = {
    queueId,
    messageId: `<${queueId}@client.test>`,
    receivedAt: (o.receivedAt ?? new Date()).toISOString(),
    connector: 'Test',
    clientIP: '127.0.0.5',
    clientHostname: 'client.test',
    helo: 'client.test',
    tls: null,
    authUser: null,
    mailFrom: { sender: o.from === '' ? null : parts(o.from), ...(o.ret ? { ret: o.ret } : {}), ...(o.envid ? { envid: o.envid } : {}), ...(o.smtpUtf8 ? { smtpUtf8: true as const } : {}), ...(o.bodyType ? { body: o.bodyType } : {}) },
    rcptTo: o.to.map((r) => (typeof r === 'string' ? parts(r) : { ...parts(r.address), ...(r.notify ? { notify: r.notify } : {}), ...(r.orcpt ? { orcpt: r.orcpt } : {}) })),
  };
  await w.commit(input, o.failedRecipients ? { failedRecipients: o.failedRecipients } : {});
  return queueId;
}

export function message(subject: string, text = 'Hello.\r\n', extraHeaders = ''): Buffer {
  return Buffer.from(`From: <sender@contoso.test>\r\nTo: <rcpt@example.test>\r\nSubject: ${subject}\r\nMessage-ID: <${randomBytes(6).toString('hex')}@client.test>\r\n${extraHeaders}\r\n${text}`);
}

/** Files in <root>/<domain>/<local>/new, contents in name order. */
export async function mailbox(root: string, address: string): Promise<Buffer[]> {
  const at = address.lastIndexOf('@');
  const dir = path.join(root, address.slice(at + 1), address.slice(0, at).toLowerCase(), 'new');
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch {
    return [];
  }
  return Promise.all(names.map((n) => readFile(path.join(dir, n))));
}

export async function eventually<T>(check: () => Promise<T | null | undefined | false> | T | null | undefined | false, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Strips the Return-Path and Delivered-To lines the maildir delivery adds. */
export function withoutDeliveryHeaders(file: Buffer): { returnPath: string; deliveredTo: string; rest: Buffer } {
  const text = file.toString('latin1');
  const m = /^Return-Path: <([^>]*)>\r?\nDelivered-To: ([^\r\n]*)\r?\n/.exec(text);
  if (!m) throw new Error(`no delivery headers in ${JSON.stringify(text.slice(0, 120))}`);
  return { returnPath: m[1]!, deliveredTo: m[2]!, rest: file.subarray(Buffer.byteLength(m[0], 'latin1')) };
}

/** A delivery worker in this process that sends every message to a far side on 127.0.0.1:`port` over SMTP (the end-to-end tests' next hop). */
export function startWorkerTo(port: number, o: { readonly dataDir: string; readonly redisUrl: string; readonly busyRetryMs?: number }): Promise<WorkerHandle> {
  return startWorkers({
    gateway: testGateway({ prefix: '{mailgw}', routes: [{ domains: ['*'], to: `smtp://127.0.0.1:${port}` }] as never }),
    dataDir: o.dataDir,
    redisUrl: o.redisUrl,
    logger: pino({ level: process.env.MAILGW_TEST_LOG ?? 'silent' }),
    concurrency: 2,
    sessionIdleMs: 1000,
    ...(o.busyRetryMs !== undefined ? { busyRetryMs: o.busyRetryMs } : {}),
  });
}
