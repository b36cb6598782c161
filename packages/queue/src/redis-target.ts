import { Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { patientClusterReadyCheck } from './cluster-ready-check.js';
import { installFastPipeline } from './library-overrides.js';

/**
 * Where the queue's Redis is, as one string every process can pass around (REDIS_URL,
 * `redisUrl` options): a plain `redis://…`/`rediss://…` URL, or
 *   redis+sentinel://[[user]:password@]<name>@host:port,host:port[/db][?sentinelPassword=…]
 *                                                                       a Sentinel set and its master name
 *                                                                       (sentinelPassword: the Sentinels' own)
 *   redis+cluster://[[user]:password@]host:port,host:port               a Redis Cluster (its seed nodes)
 *   (the credentials, percent-encoded, are those of the master and replicas / the cluster nodes;
 *   rediss+sentinel:// and rediss+cluster:// speak TLS to every node, Sentinels included)
 *   unix://[[user]:password@]/path/to/redis.sock[?db=N] Redis on this machine, over its Unix socket
 * built from gateway.yaml's `redis: { sentinels, name }` / `redis: { cluster }` by redisTarget().
 */
export interface RedisTargetConfig {
  url?: string | undefined;
  sentinels?: readonly string[] | undefined;
  name?: string | undefined;
  cluster?: readonly string[] | undefined;
  /**
   * Credentials of the url's server (put into the url, which must carry none of its own), the
   * Sentinel set's master and replicas, or the Cluster's nodes.
   */
  username?: string | undefined;
  password?: string | undefined;
  /** The Sentinels' own password (requirepass in sentinel.conf), when they have one. */
  sentinelPassword?: string | undefined;
  /** TLS to the Sentinels and the master and replicas, or to the Cluster's nodes. */
  tls?: boolean | undefined;
}

const MULTI_NODE = /^(rediss?)\+(sentinel|cluster):\/\//;
const SENTINEL = /^rediss?\+sentinel:\/\//;
const CLUSTER = /^rediss?\+cluster:\/\//;
const UNIX = 'unix://';

export function redisTarget(c: RedisTargetConfig): string | undefined {
  const credentials = c.password !== undefined ? `${encodeURIComponent(c.username ?? '')}:${encodeURIComponent(c.password)}@` : '';
  const scheme = c.tls ? 'rediss' : 'redis';
  if (c.cluster && c.cluster.length > 0) return `${scheme}+cluster://${credentials}${c.cluster.join(',')}`;
  const sentinelAuth = c.sentinelPassword !== undefined ? `?sentinelPassword=${encodeURIComponent(c.sentinelPassword)}` : '';
  if (c.sentinels && c.sentinels.length > 0) return `${scheme}+sentinel://${credentials}${encodeURIComponent(c.name ?? 'mymaster')}@${c.sentinels.join(',')}${sentinelAuth}`;
  if (c.url !== undefined && credentials !== '') return c.url.replace(/^([a-z]+:\/\/)/, `$1${credentials}`);
  return c.url;
}

/** A Sentinel or Cluster target, parsed (pure). */
export interface MultiNodeTarget {
  readonly kind: 'sentinel' | 'cluster';
  readonly nodes: Array<{ host: string; port: number }>;
  /** The Sentinel set's master name. */
  readonly name?: string;
  readonly db?: number;
  readonly username?: string;
  readonly password?: string;
  readonly sentinelPassword?: string;
  /** rediss+…: TLS to every node. */
  readonly tls: boolean;
}

/** redis[s]+sentinel://… or redis[s]+cluster://… as its parts; null for any other target. */
export function multiNodeTarget(target: string): MultiNodeTarget | null {
  const m = MULTI_NODE.exec(target);
  if (!m) return null;
  const kind = m[2] as 'sentinel' | 'cluster';
  const tls = m[1] === 'rediss';
  let rest = target.slice(m[0].length);
  // user:password@ first: the one part with a colon before its @ (a master name has none).
  const creds = /^([^:@/]*):([^@/]*)@/.exec(rest);
  if (creds) rest = rest.slice(creds[0].length);
  const auth = creds ? { ...(creds[1] ? { username: decodeURIComponent(creds[1]) } : {}), password: decodeURIComponent(creds[2]!) } : {};
  if (kind === 'cluster') return { kind, nodes: hostPorts(rest), ...auth, tls };
  const q = rest.indexOf('?');
  const query = new URLSearchParams(q >= 0 ? rest.slice(q + 1) : '');
  if (q >= 0) rest = rest.slice(0, q);
  const sentinelPassword = query.get('sentinelPassword');
  const at = rest.indexOf('@');
  const [list, db] = rest.slice(at + 1).split('/');
  return { kind, nodes: hostPorts(list ?? ''), name: decodeURIComponent(rest.slice(0, at)), ...(db ? { db: Number(db) } : {}), ...auth, ...(sentinelPassword !== null ? { sentinelPassword } : {}), tls };
}

/**
 * `target` with its password (redis://user:password@…, unix://:password@/…) shown as ***, for
 * messages and logs. A sentinel set's master name (redis+sentinel://name@…) is not a password.
 */
export function redisUrlForDisplay(target: string): string {
  // A Sentinel target: up to the @ before the master name (its last @).
  if (SENTINEL.test(target)) {
    return target.replace(/([?&]sentinelPassword=)[^&]*/, '$1***').replace(/^(rediss?\+sentinel:\/\/)([^:@/]*):.*@(?=[^@]*@[^@]*$)/i, '$1$2:***@');
  }
  // Up to the last @: a password written with an unencoded @ or / is hidden whole.
  return target.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^:@/]*):.*@(?=[^@]*$)/i, '$1$2:***@');
}

/** TLS errors Node reports when it does not trust the server's certificate chain. */
const UNTRUSTED = /unable to verify the first certificate|self[- ]signed certificate|unable to get (local )?issuer certificate|certificate has expired|certificate is not yet valid|certificate signature failure/i;

/**
 * What to do about a failure to reach the queue's Redis, when its message says it: the TLS cases
 * of rediss:// (a private CA, a name the certificate does not carry), which an admin cannot
 * guess from Node's wording alone. Null for anything else. Pure.
 */
export function redisConnectHint(message: string): string | null {
  if (UNTRUSTED.test(message)) {
    return `the Redis' TLS certificate is not trusted here: if a private CA signed it, give that CA to mailgw with NODE_EXTRA_CA_CERTS=/path/to/ca.pem in its environment (read when it starts)`;
  }
  if (/does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/i.test(message)) {
    return "the Redis' TLS certificate does not carry the name or address mailgw connects to: use one it carries (its subjectAltName) in the URL";
  }
  return null;
}

/** Whether `target` names a Redis Cluster (its queue shards are then placed over the masters). */
export function isClusterTarget(target: string): boolean {
  return CLUSTER.test(target);
}

export function isRedisTarget(s: string): boolean {
  return /^rediss?:\/\//.test(s) || SENTINEL.test(s) || CLUSTER.test(s) || s.startsWith(UNIX);
}

/**
 * unix://[[user]:password@]/path[?db=N] as ioredis options. A Unix socket costs each round
 * trip less than loopback TCP (no TCP stack, no ACKs): the way to reach a Redis on this machine.
 */
export function unixSocketOptions(target: string): { path: string; db?: number; username?: string; password?: string } {
  const m = /^unix:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?(\/[^?]*)(?:\?db=(\d+))?$/.exec(target);
  if (!m) throw new TypeError(`invalid Redis socket ${JSON.stringify(target)}: expected unix:///path/to/redis.sock[?db=N]`);
  const [, user, pass, path, db] = m;
  return {
    path: decodeURIComponent(path!),
    ...(db ? { db: Number(db) } : {}),
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(pass !== undefined ? { password: decodeURIComponent(pass) } : {}),
  };
}

function hostPorts(list: string): Array<{ host: string; port: number }> {
  return list
    .split(',')
    .filter((s) => s.length > 0)
    .map((hp) => {
      const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(hp.trim());
      if (!m) throw new TypeError(`invalid Redis node ${JSON.stringify(hp)}: expected host:port`);
      return { host: m[1]!, port: Number(m[2]) };
    });
}

/**
 * Opens a connection to `target` with `options` (a Cluster gets them as its per-node
 * redisOptions, plus the cluster-level ones that exist there).
 */
export function connectRedis(target: string, options: RedisOptions): Redis {
  const redis = open(target, options);
  installFastPipeline(redis);
  return redis;
}

function open(target: string, options: RedisOptions): Redis {
  const multi = multiNodeTarget(target);
  const auth = multi ? { ...(multi.username !== undefined ? { username: multi.username } : {}), ...(multi.password !== undefined ? { password: multi.password } : {}) } : {};
  // TLS exactly when the target says rediss+…: with the caller's TLS options (a test's private
  // CA) or Node's defaults (the system's CAs and NODE_EXTRA_CA_CERTS), as for rediss://.
  const { tls: tlsOptions, ...plain } = options;
  const tls = multi?.tls ? { tls: tlsOptions ?? {} } : {};
  if (multi?.kind === 'cluster') {
    const nodes = multi.nodes;
    const clusterOptions: ClusterOptions = {
      redisOptions: { ...plain, ...auth, ...tls },
      ...(options.enableOfflineQueue !== undefined ? { enableOfflineQueue: options.enableOfflineQueue } : {}),
      ...(options.retryStrategy ? { clusterRetryStrategy: (times: number) => options.retryStrategy!(times) ?? null } : {}),
      ...(options.enableAutoPipelining !== undefined ? { enableAutoPipelining: options.enableAutoPipelining } : {}),
      ...(options.lazyConnect !== undefined ? { lazyConnect: options.lazyConnect } : {}),
    };
    // A Cluster has the command API of a Redis connection (and BullMQ accepts either); callers
    // type it as Redis so the single-node code paths stay unchanged.
    const cluster = new Redis.Cluster(nodes, clusterOptions);
    if (options.enableOfflineQueue === false) patientClusterReadyCheck(cluster, options.connectTimeout ?? 10_000);
    return cluster as unknown as Redis;
  }
  if (multi?.kind === 'sentinel') {
    return new Redis({
      ...plain,
      ...auth,
      sentinels: multi.nodes,
      name: multi.name!,
      ...(multi.db !== undefined ? { db: multi.db } : {}),
      ...(multi.sentinelPassword !== undefined ? { sentinelPassword: multi.sentinelPassword } : {}),
      // TLS to the Sentinels and to the master and replicas they name.
      ...(multi.tls ? { ...tls, sentinelTLS: tlsOptions ?? {}, enableTLSForSentinelMode: true } : {}),
    });
  }
  if (target.startsWith(UNIX)) return new Redis({ ...options, ...unixSocketOptions(target) });
  return new Redis(target, options);
}
