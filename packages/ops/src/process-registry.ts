// Every mailgw process (listener, worker, on any machine) says it is alive: a heartbeat every
// HEARTBEAT_MS into one hash in Redis, <prefix>:processes, field <host>:<pid>, so the dashboard
// and /api/state anywhere list the whole gateway. One key, so it works on Redis Cluster too;
// a process that stopped cleanly removes itself, one that died ages out (STALE_AFTER_MS).
import os from 'node:os';
import type { Cluster, Redis } from 'ioredis';
import { combinePressure, type PressureLevel } from '@mailgw/policy';

export const HEARTBEAT_MS = 10_000;
/** Three missed heartbeats: the process is gone. */
export const STALE_AFTER_MS = 3 * HEARTBEAT_MS;

export type ProcessRole = 'listener' | 'worker' | 'listener+worker';

export interface ProcessHeartbeat {
  readonly role: ProcessRole;
  readonly host: string;
  readonly pid: number;
  readonly version: string;
  /** ms since the epoch */
  readonly startedAt: number;
  /** ms since the epoch, of this heartbeat */
  readonly at: number;
  readonly connections?: number;
  readonly deliveriesInProgress?: number;
  /** Of those, the ones waiting for room within queue.workerMessageBytes. */
  readonly deliveriesWaitingForMemory?: number;
  /** Next hops so slow that its deliveries for them go back to the queue until their turn. */
  readonly crowdedNextHops?: number;
  /** A listener's back pressure (level and why), as its monitor last read it. */
  readonly backPressure?: HeartbeatPressure;
}

export interface HeartbeatPressure {
  readonly level: PressureLevel;
  readonly reason: string;
}

/** The highest level of several processes' back pressure (policy's rule: the first of equals); null for none. */
export function highestPressure(all: readonly HeartbeatPressure[]): HeartbeatPressure | null {
  return all.length > 0 ? combinePressure(all) : null;
}

export type HeartbeatFigures = Pick<ProcessHeartbeat, 'connections' | 'deliveriesInProgress' | 'deliveriesWaitingForMemory' | 'crowdedNextHops' | 'backPressure'>;

export const processesKey = (prefix: string): string => `${prefix}:processes`;

export function startHeartbeat(o: {
  readonly redis: Redis | Cluster;
  readonly prefix: string;
  readonly role: ProcessRole;
  readonly version: string;
  /** Live figures for each beat. */
  readonly figures?: () => HeartbeatFigures;
  readonly onError?: (err: Error) => void;
  readonly intervalMs?: number;
}): { stop(): Promise<void>; beatNow(): void } {
  const host = os.hostname();
  const field = `${host}:${process.pid}`;
  const startedAt = Date.now();
  const key = processesKey(o.prefix);
  const beat = () => {
    const hb: ProcessHeartbeat = { role: o.role, host, pid: process.pid, version: o.version, startedAt, at: Date.now(), ...(o.figures?.() ?? {}) };
    o.redis.hset(key, field, JSON.stringify(hb)).catch((err: Error) => o.onError?.(err));
  };
  beat();
  const timer = setInterval(beat, o.intervalMs ?? HEARTBEAT_MS);
  timer.unref();
  return {
    beatNow: beat,
    async stop() {
      clearInterval(timer);
      await o.redis.hdel(key, field).catch(() => undefined);
    },
  };
}

/** The live processes (and the stale entries removed), by host and pid. Pure part: liveOf. */
export async function liveProcesses(redis: Redis | Cluster, prefix: string, now = Date.now()): Promise<ProcessHeartbeat[]> {
  const all = await redis.hgetall(processesKey(prefix));
  const { live, stale } = liveOf(all, now);
  if (stale.length) await redis.hdel(processesKey(prefix), ...stale).catch(() => undefined);
  return live;
}

export function liveOf(entries: Record<string, string>, now: number): { live: ProcessHeartbeat[]; stale: string[] } {
  const live: ProcessHeartbeat[] = [];
  const stale: string[] = [];
  for (const [field, text] of Object.entries(entries)) {
    let hb: ProcessHeartbeat | null = null;
    try {
      hb = JSON.parse(text) as ProcessHeartbeat;
    } catch {
      hb = null;
    }
    if (!hb || typeof hb.at !== 'number' || now - hb.at > STALE_AFTER_MS) stale.push(field);
    else live.push(hb);
  }
  live.sort((a, b) => a.host.localeCompare(b.host) || a.role.localeCompare(b.role) || a.pid - b.pid);
  return { live, stale };
}
