// The gateway-wide copy of a log in Redis (the tracking log's and the agent log's daily streams),
// read by the commands that search a log: when Redis does not answer they say so and go on with
// this machine's files.
import { connectRedis, readTrackingStreams, redisUrlForDisplay, type StreamKey } from '@mailgw/queue';

export { streamDays } from '@mailgw/queue';

/**
 * A connection to the streams' Redis, or null (and a line on stderr saying what the command does
 * instead) when it does not answer. The caller disconnects it.
 */
export async function openStreamRedis(o: { command: string; url: string; instead: string; stderr: NodeJS.WritableStream }): Promise<ReturnType<typeof connectRedis> | null> {
  const redis = connectRedis(o.url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return redis;
  } catch (err) {
    redis.disconnect();
    o.stderr.write(`mailgw ${o.command}: Redis (${redisUrlForDisplay(o.url)}) did not answer (${(err as Error).message}): ${o.instead}\n`);
    return null;
  }
}

/** The streams' lines of `days`, or null (and a line on stderr) when Redis does not answer. */
export async function readStreamLines(o: { command: string; url: string; prefix: string; days: readonly string[]; key?: StreamKey; stderr: NodeJS.WritableStream }): Promise<string[] | null> {
  const redis = await openStreamRedis({ ...o, instead: "searching this machine's files only" });
  if (!redis) return null;
  try {
    return await readTrackingStreams(redis, o.prefix, o.days, o.key);
  } catch (err) {
    o.stderr.write(`mailgw ${o.command}: Redis (${redisUrlForDisplay(o.url)}) did not answer (${(err as Error).message}): searching this machine's files only\n`);
    return null;
  } finally {
    redis.disconnect();
  }
}
