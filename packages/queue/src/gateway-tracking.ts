// The tracking log every mailgw process writes: the day's file under dataDir and, unless
// gateway.yaml logs.messageTrackingStreamMaxLength is 0, the gateway-wide stream in Redis.
import { openTrackingLog, trackingDir, type TrackingLog } from './tracking-log.js';
import { openTrackingStream, type RedisClient, type TrackingStreamSettings } from './tracking-stream.js';

export function openGatewayTracking(o: {
  readonly dataDir: string;
  /** The queue's Redis (the stream's home); null: the files only. */
  readonly redis: RedisClient | null;
  readonly prefix: string;
  /** gateway.yaml logs, read on every batch (a reload applies). */
  readonly settings: () => { readonly messageTrackingStreamMaxLength: number; readonly messageTrackingStreamMaxAge: number };
  readonly onFileError: (err: Error) => void;
  readonly onStreamError: (err: Error) => void;
}): TrackingLog {
  const settings = (): TrackingStreamSettings => {
    const s = o.settings();
    return { maxLength: s.messageTrackingStreamMaxLength, maxAgeMs: s.messageTrackingStreamMaxAge };
  };
  const stream = o.redis ? openTrackingStream({ redis: o.redis, prefix: o.prefix, settings, onError: o.onStreamError }) : undefined;
  return openTrackingLog(trackingDir(o.dataDir), { onError: o.onFileError, ...(stream ? { stream } : {}) });
}
