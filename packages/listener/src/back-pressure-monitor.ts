// Reads the memory use of the queue's Redis every checkInterval (INFO memory; on a Redis
// Cluster every master, the fullest counts) and keeps the back pressure level the policy
// derives from it (pressureLevel, with its hysteresis). Each listener process has one; the
// connections ask it at MAIL FROM without a round trip. A reading that fails keeps the last
// level: a Redis that cannot be reached is the mail store's business (451 at DATA).
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { pressureLevel, type BackPressureSettings, type MemoryReading, type PressureState } from '@mailgw/policy';

export interface BackPressureGauge {
  current(): PressureState;
}

export interface BackPressureMonitorOptions {
  readonly redis: Redis | Cluster;
  /** Read again at every check, so a reload applies. */
  readonly settings: () => BackPressureSettings & { readonly checkInterval: number };
  readonly logger: Logger;
}

const field = (info: string, name: string): number | null => {
  const m = new RegExp(`^${name}:(\\d+)\\r?$`, 'm').exec(info);
  return m ? Number(m[1]) : null;
};

/** One node's INFO memory as a reading; null when it says nothing usable. */
export function memoryReading(info: string, node?: string): MemoryReading | null {
  const used = field(info, 'used_memory');
  const max = field(info, 'maxmemory');
  const system = field(info, 'total_system_memory');
  if (used === null) return null;
  const base = node ? { node } : {};
  if (max !== null && max > 0) return { usedBytes: used, limitBytes: max, limitFrom: 'maxmemory', ...base };
  if (system !== null && system > 0) return { usedBytes: used, limitBytes: system, limitFrom: 'system memory', ...base };
  return null;
}

export class BackPressureMonitor implements BackPressureGauge {
  private state: PressureState = { level: 'normal', reason: 'not read yet' };
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly o: BackPressureMonitorOptions) {}

  current(): PressureState {
    return this.state;
  }

  /** Reads once now (so a listener starts knowing the level), then every checkInterval. */
  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.check().finally(() => this.schedule()), this.o.settings().checkInterval);
    this.timer.unref();
  }

  /** The fullest node's reading (by share of its limit). */
  private async read(): Promise<MemoryReading | null> {
    const r = this.o.redis;
    const nodes: Array<{ info(section: string): Promise<string>; name?: string }> =
      'nodes' in r && typeof r.nodes === 'function' ? (r as Cluster).nodes('master').map((n) => ({ info: (s: string) => n.info(s), name: `${n.options.host}:${n.options.port}` })) : [{ info: (s: string) => (r as Redis).info(s) }];
    const readings = (await Promise.all(nodes.map(async (n) => memoryReading(await n.info('memory'), nodes.length > 1 ? n.name : undefined)))).filter((x): x is MemoryReading => x !== null);
    if (readings.length === 0) return null;
    return readings.reduce((a, b) => (b.usedBytes / b.limitBytes > a.usedBytes / a.limitBytes ? b : a));
  }

  private async check(): Promise<void> {
    const settings = this.o.settings();
    let reading: MemoryReading | null;
    try {
      reading = await this.read();
    } catch (err) {
      this.o.logger.debug({ err: (err as Error).message }, 'back pressure: the memory use of the queue\'s Redis could not be read; the level stays');
      return;
    }
    if (reading === null) return;
    const next = pressureLevel(this.state.level, reading, settings);
    const before = this.state.level;
    this.state = next;
    if (next.level === before) return;
    const log = next.level === 'normal' ? this.o.logger.info.bind(this.o.logger) : this.o.logger.warn.bind(this.o.logger);
    log({ backPressure: next.level, previous: before, why: next.reason }, next.level === 'high' ? 'back pressure high: all new mail is refused (452 4.3.1) until the queue\'s Redis has memory again' : next.level === 'medium' ? 'back pressure medium: mail from anonymous senders is refused (452 4.3.1); authenticated and externally secured sessions go on' : 'back pressure over: mail is accepted again');
  }
}
