// How the commands word a Redis they cannot reach: the URL without its password, Node's reason,
// and what to do when the reason is one an admin cannot act on from its wording alone.
import { redisConnectHint, redisUrlForDisplay } from '@mailgw/queue';

/** `message`, and on a second, indented line what to do about it when redisConnectHint knows. */
export function withRedisHint(message: string): string {
  const hint = redisConnectHint(message);
  return `${message}${hint ? `\n  ${hint}` : ''}`;
}

export function cannotReachRedis(url: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `cannot reach Redis at ${redisUrlForDisplay(url)}: ${withRedisHint(message)}`;
}
