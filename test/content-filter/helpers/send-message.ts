// One anonymous message from sender@example.net to alice@contoso.test over real SMTP, as the
// content filter tests send them: the reply to the final dot and, when queued, its queue id.
import assert from 'node:assert/strict';
import { RawSmtp, queueIdOf } from '../../listener/helpers/smtp-client.js';

export async function sendMessage(port: number, message: string, from = '127.0.0.1'): Promise<{ reply: string; id: string | null }> {
  const c = await RawSmtp.connect({ host: '127.0.0.1', port, localAddress: from });
  await c.ehlo('sender.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@example.net>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<alice@contoso.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(`${message.replace(/^\./gm, '..')}.\r\n`);
  const r = await c.read();
  await c.quit();
  return { reply: r.last, id: r.code === 250 ? queueIdOf(r) : null };
}
