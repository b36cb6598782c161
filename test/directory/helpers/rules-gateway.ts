// The set-up the transport rule tests on the directory share: a real slapd (the AD-shaped
// fixture), a real Redis, and a listener with the rules as its content filter on two
// connectors: "Exchange" (the Exchange servers behind mailgw, trusted by IP, relaying their
// users' mail) and "Internet". `send` runs one transaction and returns the final reply and, when
// the message was taken, its header as stored.
import { contentFilters } from '@mailgw/content-filter';
import { createDirectoryService, type DirectoryService } from '@mailgw/directory';
import { startRedis, type TestRedis } from '../../harness/redis.js';
import { adDirectory, startSlapd, type TestSlapd } from '../../harness/slapd.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../../listener/helpers/gateway.js';
import { RawSmtp, queueIdOf } from '../../listener/helpers/smtp-client.js';

export interface RulesGateway {
  readonly ldap: TestSlapd;
  readonly gw: TestGateway;
  readonly exchangePort: number;
  readonly internetPort: number;
  send(port: number, from: string, to: string, subject?: string): Promise<{ end: string; header: string | null }>;
  /** From the Exchange connector to partner@fabrikam.example (outside the organisation). */
  out(from: string): Promise<{ end: string; header: string | null }>;
  close(): Promise<void>;
}

export async function startRulesGateway(rules: unknown[]): Promise<RulesGateway> {
  const ldap = (await startSlapd())!;
  const redis: TestRedis = await startRedis({ appendonly: false });
  const exchangePort = await freePort();
  const internetPort = await freePort();
  const gateway = await baseGateway({ directory: adDirectory(ldap), transportRules: rules });
  const connectors = {
    exchange: { name: 'Exchange', bindings: [`127.0.0.1:${exchangePort}`], remoteIPRanges: ['127.0.0.1'], tarpitInterval: 0, authMechanism: ['ExternalAuthoritative'], permissionGroups: ['ExchangeServers'] },
    internet: { name: 'Internet', usage: 'Internet', bindings: [`127.0.0.1:${internetPort}`], tarpitInterval: 0 },
  };
  const dir: DirectoryService = createDirectoryService({ config: compile(gateway, connectors).config.gateway.directory!, redisUrl: redis.url });
  const gw = await startGateway({ redisUrl: redis.url, gateway, connectors, directory: dir, filtersFor: (p) => contentFilters(p.config.gateway, dir), filterTimeoutMs: 5000 });

  async function send(port: number, from: string, to: string, subject = 'Hello'): Promise<{ end: string; header: string | null }> {
    const c = await RawSmtp.connect({ host: '127.0.0.1', port });
    try {
      await c.ehlo('client.test');
      const t = await c.transaction(from, [to], [`From: ${from}`, `To: ${to}`, `Subject: ${subject}`, '', 'Hi', ''].join('\r\n'));
      const end = t.end ?? t.data!;
      if (end.code !== 250) return { end: end.last, header: null };
      const body = await gw.body(queueIdOf(end));
      return { end: end.last, header: body!.toString('latin1').split('\r\n\r\n')[0]! };
    } finally {
      await c.quit().catch(() => undefined);
    }
  }

  return {
    ldap,
    gw,
    exchangePort,
    internetPort,
    send,
    out: (from) => send(exchangePort, from, 'partner@fabrikam.example'),
    async close() {
      await gw.close();
      await dir.close();
      await ldap.close();
      await redis.stop();
    },
  };
}
