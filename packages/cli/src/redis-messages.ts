// How the commands word a Redis they cannot reach: the URL without its password, Node's reason,
// and what to do when the reason is one an admin cannot act on from its wording alone.
import { redisConnectHint, redisUrlForDisplay } from '@mailgw/queue';

export function cannotReachRedis(url: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const hint = redisConnectHint(message);
  return `cannot reach Redis at ${redisUrlForDisplay(url)}: ${message}${hint ? `\n  ${hint}` : ''}`;
}
