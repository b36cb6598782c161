// `mailgw queue messages` and `mailgw queue show` show addresses readably: IDN domains in
// U-labels (the job keeps A-labels), a domain that is not valid punycode as it is. With --json
// both keep the addresses as stored (A-labels: what the job, the tracking log and the filters
// carry) and add the readable form beside them. `show` runs on the CLI's own function against a
// real redis-server holding a message queued as a listener queues it (no worker runs).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openMailStore, type MailStore } from '@mailgw/queue';
import { messagesText } from '../../packages/cli/src/commands/queue-messages.js';
import { runQueue, type QueueOptions } from '../../packages/cli/src/commands/queue.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { enqueue, message } from '../worker/helpers/gateway.js';
import { captureIO } from './helpers/cli-io.js';
import { makeConfigDir, type ConfigDir } from './helpers/config-dir.js';

it('the messages table shows U-labels; bad punycode as it is', () => {
  const text = messagesText({ rows: [{ id: 'Q1', status: 'Ready', from: 'jörg@xn--bcher-kva.test', recipients: ['dana@xn--bcher-kva.test', 'eve@xn--zz.test', 'x@xn--bcher-kva.test'], size: 10, receivedAt: 0, hops: [], nextAttemptAt: null, lastError: null, subject: null, pending: [] }], matched: 1, remaining: 1 }, 1000);
  assert.match(text, /<jörg@bücher\.test> +dana@bücher\.test,eve@xn--zz\.test \+1 /);
  assert.doesNotMatch(text, /xn--bcher/);
});

describe('mailgw queue show and messages with IDN addresses', () => {
  let redis: TestRedis;
  let cfg: ConfigDir;
  let store: MailStore;
  let id: string;
  const PREFIX = '{readable}';

  async function queueCmd(sub: string, args: string[] = [], opts: Partial<QueueOptions> = {}) {
    const io = captureIO();
    const code = await runQueue(sub, args, { config: cfg.gatewayFile, ...opts }, { stdout: io.stdout, stderr: io.stderr, env: { REDIS_URL: redis.url } });
    return { code, out: io.out(), err: io.err() };
  }

  before(async () => {
    redis = await startRedis();
    cfg = makeConfigDir();
    cfg.writeGateway(
      [
        'fqdn: mail.contoso.test',
        'dataDir: ./var',
        'acceptedDomains:',
        '  - { domain: contoso.test, default: true }',
        '  - { domain: bücher.test, type: InternalRelay }',
        `redis: { prefix: "${PREFIX}" }`,
        'routes:',
        '  - { domains: [contoso.test], to: "maildir:./var/mailboxes" }',
        '  - { domains: ["*"], to: "smtp://127.0.0.1:9" }',
        '',
      ].join('\n'),
    );
    cfg.writeConnector('default.yaml', 'name: Default\nusage: Internet\nbindings: ["127.0.0.1:2525"]\n');
    store = await openMailStore({ url: redis.url, prefix: PREFIX });
    // As the listener stores it: the domains as A-labels, the UTF-8 local part as it came.
    id = await enqueue(store, { from: 'jörg@bücher.test', to: ['dana@xn--bcher-kva.test', 'bob@contoso.test'], body: message('idn'), smtpUtf8: true });
  });

  after(async () => {
    await store?.close();
    await redis?.stop();
    cfg?.remove();
  });

  it('show prints U-labels for the sender and the recipients; ASCII domains as they are', async () => {
    const r = await queueCmd('show', [id]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Sender: +<jörg@bücher\.test> SMTPUTF8$/m);
    assert.match(r.out, /^ {2}dana@bücher\.test +pending /m);
    assert.match(r.out, /^ {2}bob@contoso\.test +pending /m);
    assert.doesNotMatch(r.out, /xn--bcher/);
  });

  it('show --json: the addresses as stored (A-labels) with readableSender and each recipient readableAddress', async () => {
    const r = await queueCmd('show', [id], { json: true });
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as { job: { mailFrom: { address: string } }; readableSender: string; recipients: Array<{ address: string; readableAddress: string }> };
    assert.equal(j.job.mailFrom.address, 'jörg@xn--bcher-kva.test');
    assert.equal(j.readableSender, 'jörg@bücher.test');
    assert.deepEqual(
      j.recipients.map((x) => [x.address, x.readableAddress]),
      [
        ['dana@xn--bcher-kva.test', 'dana@bücher.test'],
        ['bob@contoso.test', 'bob@contoso.test'],
      ],
    );
  });

  it('messages --json finds the message by the U-label or the A-label; rows carry both forms', async () => {
    for (const recipient of ['dana@bücher.test', 'DANA@xn--bcher-kva.test']) {
      const r = await queueCmd('messages', [], { json: true, recipient });
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out) as { matched: number; messages: Array<{ id: string; from: string; readableFrom: string; recipients: string[]; readableRecipients: string[] }> };
      assert.equal(j.matched, 1, recipient);
      const m = j.messages[0]!;
      assert.equal(m.id, id);
      assert.deepEqual([m.from, m.readableFrom], ['jörg@xn--bcher-kva.test', 'jörg@bücher.test']);
      assert.deepEqual(m.recipients, ['dana@xn--bcher-kva.test', 'bob@contoso.test']);
      assert.deepEqual(m.readableRecipients, ['dana@bücher.test', 'bob@contoso.test']);
    }
  });
});
