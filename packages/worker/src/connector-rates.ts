// A send connector's messageRateLimit, counted across every worker in Redis: messages per
// sliding minute per connector, with the queue's rate-take script (the listener's
// messageRateLimit uses the same one). A message over the limit is not tried: it waits, as for a
// busy destination, and is retried shortly.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { defineScripts, type KeySpace } from '@mailgw/queue';

export const RATE_WINDOW_MS = 60_000;

export class ConnectorRates {
  private readonly take: (...args: Array<string | number>) => Promise<unknown>;

  constructor(
    redis: Redis,
    private readonly keys: KeySpace,
  ) {
    this.take = defineScripts(redis, ['rate-take'])['rate-take'];
  }

  /** Records one message for `connector` if it is under `limit` per minute; false when the limit is reached. */
  async admit(connector: string, limit: number): Promise<boolean> {
    const t = Date.now();
    const before = Number(await this.take(this.keys.rateCounter(`send-connector|${encodeURIComponent(connector)}`), t, RATE_WINDOW_MS, limit, `${t}-${randomBytes(6).toString('hex')}`));
    return before < limit;
  }
}
