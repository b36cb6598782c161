// Back pressure (Exchange's transport back pressure, for the one resource that holds every
// accepted message here: the queue's Redis memory). At `medium` the gateway stops taking mail
// from anonymous senders (the Internet) and still takes it from authenticated clients and
// externally secured connectors (its own organisation); at `high` it takes none. Refusals are
// 452 4.3.1 at MAIL FROM, so senders queue the mail and retry, and the delivery workers keep
// the headroom they need to deliver and free what is queued. Pure: the monitor in @mailgw/listener
// reads Redis, the listener asks this module.
import { accept, reject, type Decision } from './decision.js';
import { REPLIES } from './replies.js';
import type { Session } from './stages.js';

export type PressureLevel = 'normal' | 'medium' | 'high';

export interface BackPressureSettings {
  readonly enabled: boolean;
  /** Memory use (% of the limit) at which anonymous mail is refused. */
  readonly mediumPercent: number;
  /** Memory use (% of the limit) at which all mail is refused. */
  readonly highPercent: number;
}

/** One reading of the queue's Redis (INFO memory): for a Redis Cluster, its fullest master. */
export interface MemoryReading {
  readonly usedBytes: number;
  /** maxmemory, or the machine's memory when the Redis has no maxmemory. */
  readonly limitBytes: number;
  readonly limitFrom: 'maxmemory' | 'system memory';
  /** The node read (a Cluster master), when there are several. */
  readonly node?: string;
}

export interface PressureState {
  readonly level: PressureLevel;
  /** For the log and the refusal's reason: the reading and the threshold. */
  readonly reason: string;
}

/** A level is left only this many points below the threshold that raised it, so it does not flap. */
export const BACK_PRESSURE_HYSTERESIS_PERCENT = 5;

const mb = (n: number) => `${(n / 1024 ** 2).toFixed(n < 10 * 1024 ** 2 ? 1 : 0)} MB`;

/**
 * The level after a reading, given the level before it: a threshold reached raises it; it comes
 * down once use is BACK_PRESSURE_HYSTERESIS_PERCENT points below the threshold of the level held.
 */
export function pressureLevel(previous: PressureLevel, r: MemoryReading, s: BackPressureSettings): PressureState {
  if (!s.enabled) return { level: 'normal', reason: 'back pressure is off (backPressure.enabled: false)' };
  if (!(r.limitBytes > 0)) return { level: 'normal', reason: 'the memory limit of the queue\'s Redis is unknown' };
  const pct = (100 * r.usedBytes) / r.limitBytes;
  const use = `the queue's Redis${r.node ? ` (${r.node})` : ''} uses ${mb(r.usedBytes)}, ${pct.toFixed(1)}% of its ${r.limitFrom} (${mb(r.limitBytes)})`;
  const h = BACK_PRESSURE_HYSTERESIS_PERCENT;
  const high = pct >= s.highPercent || (previous === 'high' && pct >= s.highPercent - h);
  if (high) return { level: 'high', reason: `${use}: at or above highPercent ${s.highPercent}%${pct < s.highPercent ? ` (high until below ${s.highPercent - h}%)` : ''}` };
  const medium = pct >= s.mediumPercent || (previous !== 'normal' && pct >= s.mediumPercent - h);
  if (medium) return { level: 'medium', reason: `${use}: at or above mediumPercent ${s.mediumPercent}%${pct < s.mediumPercent ? ` (medium until below ${s.mediumPercent - h}%)` : ''}` };
  return { level: 'normal', reason: `${use}: below mediumPercent ${s.mediumPercent}%` };
}

/** Whether this session may start a transaction under the current back pressure (asked at MAIL FROM). */
export function backPressure(session: Session, state: PressureState): Decision {
  if (state.level === 'high') return reject(REPLIES.insufficientResources, 'back-pressure-high', `back pressure high, all mail refused: ${state.reason}`);
  if (state.level === 'medium') {
    if (session.user) return accept(REPLIES.senderOk, 'back-pressure-exempt', `back pressure medium, but user ${session.user.name} is authenticated: ${state.reason}`);
    if (session.connector.externallySecured) return accept(REPLIES.senderOk, 'back-pressure-exempt', `back pressure medium, but connector "${session.connector.name}" is externally secured: ${state.reason}`);
    return reject(REPLIES.insufficientResources, 'back-pressure-medium', `back pressure medium, mail from anonymous senders refused: ${state.reason}`);
  }
  return accept(REPLIES.senderOk, 'back-pressure-normal', state.reason);
}
