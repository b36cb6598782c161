import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { parseEnvelopeAddress, type MailAddress } from '@mailgw/mail';
import type { CommitInput } from '@mailgw/queue';

/** An address as the job keeps it (parts), from text, parsed as the listener parses it. */
export function parts(text: string): MailAddress {
  const p = parseEnvelopeAddress(text);
  if (!p.ok) throw new Error(`test address ${text}: ${p.reason}`);
  return { local: p.value.local, domain: p.value.domain };
}

/** A fresh key prefix per test (a hash tag, like the default). */
export function randomPrefix(): string {
  return `{t${randomBytes(6).toString('hex')}}`;
}

export function envelope(queueId: string, overrides: Partial<CommitInput> = {}): CommitInput {
  return {
    queueId,
    messageId: `<${queueId}@test.example>`,
    receivedAt: new Date().toISOString(),
    connector: 'Default Frontend',
    clientIP: '127.0.0.5',
    clientHostname: 'client.test.example',
    helo: 'client.test.example',
    tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    authUser: null,
    mailFrom: { sender: parts('sender@test.example'), ret: 'HDRS', envid: 'ENV1', body: '8BITMIME' },
    rcptTo: [
      { ...parts('rcpt1@dest.example'), notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;rcpt1@dest.example' },
      parts('rcpt2@dest.example'),
    ],
    ...overrides,
  };
}

/** A plain client for inspecting Redis from tests. */
export function inspector(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
}

/** Every key of the server (SCAN). */
export async function allKeys(redis: Redis, pattern = '*'): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/** Deterministic pseudo-random bytes, including CR, LF and NUL. */
export function binaryBody(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  // make sure the awkward bytes are there, at chunk-ish boundaries too
  for (const at of [0, 1, 2, size - 3, size - 2, size - 1]) if (at >= 0 && at < size) buf[at] = [0x0d, 0x0a, 0x00][at % 3]!;
  return buf;
}

export async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
