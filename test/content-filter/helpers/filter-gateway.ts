// A gateway with one Internet connector and gateway.yaml's content filtering as given, for the
// attachment filter and transport rule tests; and a message with one attachment.
import { after, before } from 'node:test';
import { contentFilters } from '@mailgw/content-filter';
import { startRedis, type TestRedis } from '../../harness/redis.js';
import { baseGateway, compile, freePort, startGateway, type TestGateway } from '../../listener/helpers/gateway.js';

export async function filterGateway(redisUrl: string, gatewayExtra: Record<string, unknown>): Promise<{ gw: TestGateway; port: number }> {
  const port = await freePort();
  const connectors = { internet: { name: 'Internet', usage: 'Internet', bindings: [`0.0.0.0:${port}`], tarpitInterval: 0 } };
  const g = await baseGateway(gatewayExtra);
  const filters = contentFilters(compile(g, connectors).config.gateway);
  return { gw: await startGateway({ redisUrl, gateway: g, connectors, filters }), port };
}

/** A transport rule that refuses password-protected archives (attachmentIsPasswordProtected). */
export const PASSWORD_RULE = { name: 'No encrypted archives', attachmentIsPasswordProtected: true, smtpRejectMessageRejectText: 'Password-protected archives cannot be scanned' };

/**
 * One Redis and a gateway for each of `configs` (gateway.yaml's content filtering), started
 * before the file's tests and closed after them; the object is filled in once they are up.
 */
export function filterGateways<K extends string>(configs: Record<K, Record<string, unknown>>): Record<K, { gw: TestGateway; port: number }> {
  const up = {} as Record<K, { gw: TestGateway; port: number }>;
  let redis: TestRedis | undefined;
  before(async () => {
    redis = await startRedis({ appendonly: false });
    for (const [name, config] of Object.entries(configs) as Array<[K, Record<string, unknown>]>) up[name] = await filterGateway(redis.url, config);
  });
  after(async () => {
    for (const g of Object.values(up) as Array<{ gw: TestGateway }>) await g.gw.close();
    await redis?.stop();
  });
  return up;
}

let boundaries = 0;
/** A message with a text part and `file` attached (base64, lines of 76) under this name and type. */
export function withAttachment(file: Buffer, name: string, type = 'application/octet-stream'): string {
  const B = `att-${++boundaries}`;
  const body = file.toString('base64').replace(/.{76}/g, '$&\r\n');
  return `From: <sender@example.net>\r\nTo: <alice@contoso.test>\r\nSubject: archive\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${B}"\r\n\r\n--${B}\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--${B}\r\nContent-Type: ${type}; name="${name}"\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}\r\n--${B}--\r\n`;
}
