// A Redis outage in a process's log: one warning when it starts, a reminder each minute while it
// lasts, one line when it ends. ioredis reports every failed reconnection attempt of every
// connection ('error'), and BullMQ passes its own on: a listener process has two connections
// that fail about once a second each, a worker five, so Redis down for ten minutes was thousands
// of identical lines and nothing said when it came back. Each process keeps one RedisOutageLog
// for its Redis; the connections it watches end the outage with their 'ready'.
import type { Redis } from 'ioredis';

/** The two levels an outage is logged at (a pino logger has them). */
export interface OutageLogger {
  warn(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
}

export interface RedisOutageLogOptions {
  /** While the outage lasts, a reminder this often (default 60 s). */
  readonly remindEveryMs?: number;
  readonly now?: () => number;
}

/** Socket-level failures: Redis unreachable, not a refused command. */
const CONNECTION_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOENT', // the Unix socket of an embedded Redis that is not running
]);
/** ioredis' own words for a connection that went away (no errno). */
const CONNECTION_MESSAGES = /^(Connection is closed\.|connect ETIMEDOUT|Stream isn't writeable|Socket closed unexpectedly)/;

/** Is `err` a connection to Redis failing (as opposed to a command Redis refused)? */
export function isRedisConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return (typeof code === 'string' && CONNECTION_CODES.has(code)) || CONNECTION_MESSAGES.test(err.message);
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

export class RedisOutageLog {
  private since: number | null = null;
  private errors = 0;
  private lastLine = 0;
  private readonly remindEveryMs: number;
  private readonly now: () => number;

  constructor(
    private readonly logger: OutageLogger,
    opts: RedisOutageLogOptions = {},
  ) {
    this.remindEveryMs = opts.remindEveryMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** Is an outage open? */
  get down(): boolean {
    return this.since !== null;
  }

  /**
   * An error from any Redis client of this process. A connection error is logged here: the
   * first of an outage as a warning, the rest counted (a reminder every remindEveryMs). Returns
   * false for any other error, which the caller logs as it always has.
   */
  failed(err: unknown): boolean {
    if (!isRedisConnectionError(err)) return false;
    const now = this.now();
    if (this.since === null) {
      this.since = now;
      this.errors = 1;
      this.lastLine = now;
      this.logger.warn({ err: (err as Error).message }, 'Redis unreachable: reconnecting (further attempts are not logged; a reminder each minute, and a line when it is back)');
      return true;
    }
    this.errors++;
    if (now - this.lastLine >= this.remindEveryMs) {
      this.lastLine = now;
      this.logger.warn({ err: (err as Error).message, downMs: now - this.since, errors: this.errors }, `Redis still unreachable after ${seconds(now - this.since)}`);
    }
    return true;
  }

  /** A watched connection is ready again: the outage, if one is open, is over. */
  ready(): void {
    if (this.since === null) return;
    const downMs = this.now() - this.since;
    this.logger.info({ downMs, errors: this.errors }, `Redis reachable again after ${seconds(downMs)}`);
    this.since = null;
    this.errors = 0;
  }

  /** Ends the outage when `redis` (re)connects. */
  watch(redis: Pick<Redis, 'on'>): void {
    redis.on('ready', () => this.ready());
  }
}
