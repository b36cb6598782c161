// mailgw recipient-limit against a real Redis whose counter a listener filled over SMTP: the
// count and the limit (the policy's or the user's own), until when a limited user is refused,
// --reset (the next RCPT is accepted again), a directory user by DN; bad input said plainly.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRedisRateCounter, type RateCounter } from '@mailgw/listener';
import { hashPassword } from '@mailgw/config';
import { runRecipientLimit, type RecipientLimitOptions } from '../../packages/cli/src/commands/recipient-limit.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { captureIO } from '../ops/helpers/cli-io.js';
import { ACCEPTED, makeConfigDir, type ConfigDir } from '../ops/helpers/config-dir.js';
import { freePort, PASSWORD, startGateway, type TestGateway } from '../listener/helpers/gateway.js';
import { RawSmtp } from '../listener/helpers/smtp-client.js';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';

let redis: TestRedis;
let cfg: ConfigDir;
let rate: RateCounter;
let gw: TestGateway;
let port = 0;

async function run(args: string[], opts: Partial<RecipientLimitOptions> = {}) {
  const io = captureIO();
  const code = await runRecipientLimit(args, { config: cfg.gatewayFile, ...opts }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url } });
  return { code, out: io.out(), err: io.err() };
}

before(async () => {
  redis = await startRedis();
  rate = createRedisRateCounter({ url: redis.url, prefix: '{rl}' });
  port = await freePort();
  const hash = await hashPassword(PASSWORD, { ln: 4 });
  cfg = makeConfigDir('mailgw-rlimit-');
  cfg.writeGateway(
    [
      'fqdn: mail.contoso.test',
      'dataDir: ./var',
      ACCEPTED,
      'redis: { prefix: "{rl}" }',
      'throttlingPolicy: { recipientRateLimit: 2 }',
      'users:',
      `  - { name: alice, passwordHash: "${hash}", addresses: [alice@contoso.test] }`,
      `  - { name: news, passwordHash: "${hash}", addresses: [news@contoso.test], recipientRateLimit: unlimited }`,
      '',
    ].join('\n'),
  );
  cfg.writeConnector('client.yaml', `name: Client\nusage: Client\nbindings: ["127.0.0.1:${port}"]\nauthMechanism: [Tls, BasicAuth]\nmessageRateLimit: unlimited\ntarpitInterval: 0\n`);
  // The same configuration in a listener (the test gateway compiles objects, not files).
  const gateway = parse(readFileSync(cfg.gatewayFile, 'utf8')) as Record<string, unknown>;
  gw = await startGateway({ redisUrl: redis.url, rateCounter: rate, gateway, connectors: { client: { name: 'Client', usage: 'Client', bindings: [`127.0.0.1:${port}`], authMechanism: ['Tls', 'BasicAuth'], messageRateLimit: 'unlimited', tarpitInterval: 0 } } });
});

after(async () => {
  await gw?.close();
  await rate?.close();
  await redis?.stop();
  cfg?.remove();
});

async function rcpts(user: string, to: string[]): Promise<number[]> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port });
  await c.ehlo('client.test');
  assert.equal((await c.authPlain(user, PASSWORD)).code, 235);
  const t = await c.transaction(`${user}@contoso.test`, to);
  await c.quit();
  return t.rcpt.map((r) => r.code);
}

describe('mailgw recipient-limit', () => {
  it('shows the count against the limit, until when a limited user is refused, and --reset lifts it', async () => {
    assert.equal((await run(['alice'])).out, 'user alice: 0 of 2 recipients in the last 24 hours (throttlingPolicy.recipientRateLimit).\n');
    assert.deepEqual(await rcpts('alice', ['a@example.org', 'b@example.org', 'c@example.org']), [250, 250, 550]);
    const limited = await run(['alice']);
    assert.equal(limited.code, 0);
    assert.match(limited.out, /^user alice: 2 of 2 recipients in the last 24 hours \(throttlingPolicy\.recipientRateLimit\)\.\n {2}limited: RCPT gets 550 5\.1\.90 until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(or mailgw recipient-limit alice --reset\)\n$/);
    const j = JSON.parse((await run(['alice'], { json: true })).out) as { recipients: number; limit: number; limited: boolean; nextAllowedAt: number };
    assert.deepEqual([j.recipients, j.limit, j.limited], [2, 2, true]);
    assert.ok(j.nextAllowedAt > Date.now() + 23 * 3_600_000);
    const reset = await run(['alice'], { reset: true });
    assert.equal(reset.out, 'user alice: the counter is cleared (2 recipients in the last 24 hours forgotten); every listener counts from 0 at the next RCPT.\n');
    assert.deepEqual(await rcpts('alice', ['d@example.org']), [250]);
  });

  it("a user's own unlimited; a directory user by DN; a name that is no local user says so", async () => {
    assert.deepEqual(await rcpts('news', ['a@example.org', 'b@example.org', 'c@example.org']), [250, 250, 250]);
    assert.equal((await run(['news'])).out, 'user news: not counted (its own recipientRateLimit is unlimited).\n');
    assert.equal((await run(['CN=Bob,OU=Staff,DC=contoso,DC=test'])).out, 'directory user CN=Bob,OU=Staff,DC=contoso,DC=test: 0 of 2 recipients in the last 24 hours (throttlingPolicy.recipientRateLimit).\n');
    assert.match((await run(['bob'])).out, /^bob \(not a local user: a directory user is counted by its DN\): 0 of 2/);
  });

  it('bad input and a Redis that is not there', async () => {
    assert.equal((await run([])).code, 2);
    assert.match((await run([])).err, /give one user: a local user's name \(alice\) or a directory user's DN/);
    const io = captureIO();
    const code = await runRecipientLimit(['alice'], { config: cfg.gatewayFile }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    assert.equal(code, 1);
    assert.match(io.err(), /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});
