// The set-up the tests of size and recipient limits on the directory share: a real slapd (the
// AD-shaped fixture: ivy takes 10 KB, jack 20 KB, henry sends 10 KB to 2 recipients), a real
// Redis, and a listener with recipient lookup in the directory on three connectors: "Internet"
// (anonymous, on `port`), "Exchange" (the Exchange servers behind, 127.0.0.30 on the same port,
// externally secured) and "People" (AUTH with a directory login, on `submitPort`).
import { createDirectoryService, type DirectoryService } from '@mailgw/directory';
import type { ListenerObserver } from '@mailgw/listener';
import { startRedis, type TestRedis } from '../../harness/redis.js';
import { adDirectory, startSlapd, type TestSlapd } from '../../harness/slapd.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../../listener/helpers/gateway.js';

export interface LimitsGateway {
  readonly ldap: TestSlapd;
  readonly redis: TestRedis;
  readonly gw: TestGateway;
  readonly dir: DirectoryService;
  /** Internet and Exchange (from 127.0.0.30). */
  readonly port: number;
  /** People: AUTH with a directory login. */
  readonly submitPort: number;
  close(): Promise<void>;
}

/** `gateway`: more gateway.yaml keys (the organisation's limits); `observer`: the listener's (a tracker). */
export async function startLimitsGateway(opts: { gateway?: Record<string, unknown>; observer?: ListenerObserver } = {}): Promise<LimitsGateway> {
  const ldap = (await startSlapd())!;
  const redis = await startRedis({ appendonly: false });
  const port = await freePort();
  const submitPort = await freePort();
  const gateway = await baseGateway({ recipients: { directory: true }, directory: adDirectory(ldap), ...opts.gateway });
  const connectors = {
    // The Internet: anonymous, as Exchange's Default Frontend connector.
    'internet.yaml': { name: 'Internet', bindings: [`127.0.0.1:${port}`], tarpitInterval: '0s', permissionGroups: ['AnonymousUsers'] },
    // The Exchange servers behind, trusted by IP: their users' mail comes through here.
    'exchange.yaml': { name: 'Exchange', bindings: [`127.0.0.1:${port}`], remoteIPRanges: ['127.0.0.30'], tarpitInterval: '0s', authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
    // People log on with their directory login and may relay.
    'people.yaml': { name: 'People', bindings: [`127.0.0.1:${submitPort}`], tarpitInterval: '0s', authMechanism: ['Tls', 'BasicAuth'], permissionGroups: ['ExchangeUsers'] },
  };
  const dir = createDirectoryService({ config: compile(gateway, connectors).config.gateway.directory!, redisUrl: redis.url });
  const gw = await startGateway({ redisUrl: redis.url, gateway, connectors, directory: dir, ...(opts.observer ? { observer: opts.observer } : {}) });
  return {
    ldap,
    redis,
    gw,
    dir,
    port,
    submitPort,
    async close() {
      await gw.close();
      await dir.close();
      await ldap.close();
      await redis.stop();
    },
  };
}

/** A message of about `kb` KB: a Subject and lines of 76 x's. */
export function messageOf(kb: number): string {
  const line = `${'x'.repeat(76)}\r\n`;
  return `Subject: ${kb} KB\r\n\r\n${line.repeat(Math.ceil((kb * 1024) / line.length))}`;
}
