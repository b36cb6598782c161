// Reads, every checkInterval, the memory use of the queue's Redis and whether it can write its
// append-only file (INFO memory and persistence; on a Redis Cluster every master, the fullest
// counts), and the use of the disk under the data directory (statfs), and keeps the back
// pressure level the policy derives from them (pressureLevel, diskPressureLevel,
// persistencePressure; the highest counts). Each listener process has one; the connections ask
// it at MAIL FROM without a round trip. A reading that fails keeps that resource's last level:
// a Redis that cannot be reached is the mail store's business (451 at DATA).
import { statfs } from 'node:fs/promises';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { combinePressure, diskPressureLevel, persistencePressure, pressureLevel, pressureRank, type BackPressureSettings, type PressureLevel, type DiskReading, type MemoryReading, type PersistenceReading, type PressureResource, type PressureState } from '@mailgw/policy';

export interface BackPressureGauge {
  current(): PressureState;
}

export interface BackPressureMonitorOptions {
  readonly redis: Redis | Cluster;
  /** Read again at every check, so a reload applies. */
  readonly settings: () => BackPressureSettings & { readonly checkInterval: number };
  readonly logger: Logger;
  /** Called after the level changed (the log line is written already). */
  readonly onChange?: (state: PressureState) => void;
  /** The data directory, whose filesystem is watched (the embedded Redis' append-only file, the logs); none: the disk is not watched. */
  readonly diskPath?: string;
}

/** One resource's last state, for the metrics. */
export interface ResourcePressure {
  readonly resource: PressureResource;
  readonly state: PressureState;
  /** The level as a number: 0 normal, 1 medium, 2 high. */
  readonly rank: number;
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

/** One node's INFO persistence: whether its append-only file cannot be written (Redis then refuses writes). */
export function persistenceReading(info: string, node?: string): PersistenceReading {
  const failed = /^aof_enabled:1\r?$/m.test(info) && /^aof_last_write_status:err\r?$/m.test(info);
  return node ? { aofWriteFailed: failed, node } : { aofWriteFailed: failed };
}

/** The filesystem under `path` as df counts it. */
export async function diskReading(path: string): Promise<DiskReading> {
  const f = await statfs(path);
  return { path, usedBytes: (f.blocks - f.bfree) * f.bsize, availableBytes: f.bavail * f.bsize };
}

export class BackPressureMonitor implements BackPressureGauge {
  private state: PressureState = { level: 'normal', reason: 'not read yet' };
  /** Each resource's last state (the hysteresis holds per resource). */
  private readonly states = new Map<PressureResource, PressureState>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly o: BackPressureMonitorOptions) {}

  current(): PressureState {
    return this.state;
  }

  /** Every resource read so far, with its level and use. */
  resources(): ResourcePressure[] {
    return [...this.states].map(([resource, state]) => ({ resource, state, rank: pressureRank(state.level) }));
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

  private nodes(): Array<{ info(section: string): Promise<string>; name: string | undefined }> {
    const r = this.o.redis;
    if ('nodes' in r && typeof r.nodes === 'function') {
      const masters = (r as Cluster).nodes('master');
      return masters.map((n) => ({ info: (s: string) => n.info(s), name: masters.length > 1 ? `${n.options.host}:${n.options.port}` : undefined }));
    }
    return [{ info: (s: string) => (r as Redis).info(s), name: undefined }];
  }

  /** The fullest node's memory (by share of its limit), and the first node that cannot write its file (else the first). */
  private async readRedis(): Promise<{ memory: MemoryReading | null; persistence: PersistenceReading | null }> {
    const read = await Promise.all(this.nodes().map(async (n) => {
      const [memory, persistence] = await Promise.all([n.info('memory'), n.info('persistence')]);
      return { memory: memoryReading(memory, n.name), persistence: persistenceReading(persistence, n.name) };
    }));
    const readings = read.map((x) => x.memory).filter((x): x is MemoryReading => x !== null);
    const memory = readings.length === 0 ? null : readings.reduce((a, b) => (b.usedBytes / b.limitBytes > a.usedBytes / a.limitBytes ? b : a));
    const persistence = read.find((x) => x.persistence.aofWriteFailed)?.persistence ?? read[0]?.persistence ?? null;
    return { memory, persistence };
  }

  private async check(): Promise<void> {
    const settings = this.o.settings();
    const previous = (r: PressureResource) => this.states.get(r)?.level ?? 'normal';
    const [redis, disk] = await Promise.allSettled([this.readRedis(), this.o.diskPath ? diskReading(this.o.diskPath) : Promise.resolve(null)]);
    if (redis.status === 'fulfilled') {
      if (redis.value.memory) this.states.set('memory', pressureLevel(previous('memory'), redis.value.memory, settings));
      if (redis.value.persistence) this.states.set('redis-writes', persistencePressure(redis.value.persistence, settings));
    } else {
      this.o.logger.debug({ err: (redis.reason as Error).message }, 'back pressure: the queue\'s Redis could not be read; its levels stay');
    }
    if (disk.status === 'fulfilled') {
      if (disk.value) this.states.set('disk', diskPressureLevel(previous('disk'), disk.value, settings));
    } else {
      this.o.logger.debug({ err: (disk.reason as Error).message, path: this.o.diskPath }, 'back pressure: the disk use could not be read; its level stays');
    }
    if (this.states.size === 0) return;
    const next = combinePressure([...this.states.values()]);
    const before = this.state.level;
    this.state = next;
    if (next.level === before) return;
    this.announce(next, before);
    this.o.onChange?.(next);
  }

  /** One line per change of level: warn while mail is refused, info when it is over. */
  private announce(next: PressureState, before: PressureLevel): void {
    const log = next.level === 'normal' ? this.o.logger.info.bind(this.o.logger) : this.o.logger.warn.bind(this.o.logger);
    const short = next.resource === 'disk' ? 'the disk under the data directory has room again' : next.resource === 'redis-writes' ? 'the queue\'s Redis can write again' : 'the queue\'s Redis has memory again';
    log({ backPressure: next.level, previous: before, resource: next.level === 'normal' ? undefined : next.resource, why: next.reason }, next.level === 'high' ? `back pressure high: all new mail is refused (452 4.3.1) until ${short}` : next.level === 'medium' ? 'back pressure medium: mail from anonymous senders is refused (452 4.3.1); authenticated and externally secured sessions go on' : 'back pressure over: mail is accepted again');
  }
}
