// The gateway-wide copy of a log in Redis (the tracking log's and the agent log's daily streams),
// read by the commands that search a log: when Redis does not answer they say so and go on with
// this machine's files.
import { connectRedis, readTrackingStreams, redisUrlForDisplay, trackingDay, type StreamKey } from '@mailgw/queue';

/** The UTC days whose streams can hold lines at or after `since` (all kept days without it). */
export function streamDays(since: Date | null, now: number, maxAgeMs: number): string[] {
  const DAY = 86_400_000;
  const from = Math.max(since ? since.getTime() : 0, now - maxAgeMs - DAY);
  const days: string[] = [];
  for (let t = Math.floor(from / DAY) * DAY; t <= now; t += DAY) days.push(trackingDay(new Date(t)));
  return days;
}

/** The streams' lines of `days`, or null (and a line on stderr) when Redis does not answer. */
export async function readStreamLines(o: { command: string; url: string; prefix: string; days: readonly string[]; key?: StreamKey; stderr: NodeJS.WritableStream }): Promise<string[] | null> {
  const redis = connectRedis(o.url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await readTrackingStreams(redis, o.prefix, o.days, o.key);
  } catch (err) {
    o.stderr.write(`mailgw ${o.command}: Redis (${redisUrlForDisplay(o.url)}) did not answer (${(err as Error).message}): searching this machine's files only\n`);
    return null;
  } finally {
    redis.disconnect();
  }
}
