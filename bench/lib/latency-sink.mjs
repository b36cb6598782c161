#!/usr/bin/env node
// A fast counting SMTP sink for the benchmark: accepts everything (PIPELINING, many messages
// per connection), and prints one line "<unix ms> <X-Bench-Id>[ dkim]" per delivered message, so the
// bench can count deliveries over time and measure accepted → at-sink latency per message
// (" arc" too when it arrived ARC-sealed).
// Usage: node latency-sink.mjs <port> [host]
import net from 'node:net';

const port = Number(process.argv[2]);
const host = process.argv[3] ?? '127.0.0.1';
let out = [];
const flush = () => {
  if (out.length) process.stdout.write(out.join(''));
  out = [];
};
setInterval(flush, 50).unref();

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let inData = false;
  sock.write('220 sink.test ESMTP bench sink\r\n');
  sock.on('error', () => {});
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    const replies = [];
    for (;;) {
      if (inData) {
        let end = buf.indexOf('\r\n.\r\n');
        let skip = 5;
        if (buf.length >= 3 && buf[0] === 0x2e && buf[1] === 0x0d && buf[2] === 0x0a) {
          end = 0;
          skip = 3;
        }
        if (end < 0) break;
        const head = buf.subarray(0, Math.min(end, 4096)).toString('latin1');
        const m = /X-Bench-Id: (\S+)/i.exec(head);
        // " dkim" / " arc" after the id: the message arrived with a DKIM-Signature / an ARC-Seal (the DKIM cost phase counts them).
        out.push(`${Date.now()} ${m ? m[1] : '-'}${/^DKIM-Signature:/im.test(head) ? ' dkim' : ''}${/^ARC-Seal:/im.test(head) ? ' arc' : ''}\n`);
        buf = buf.subarray(end + skip);
        inData = false;
        replies.push('250 2.0.0 Ok: queued\r\n');
        continue;
      }
      const nl = buf.indexOf('\r\n');
      if (nl < 0) break;
      const line = buf.subarray(0, nl).toString('latin1');
      buf = buf.subarray(nl + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO' || verb === 'LHLO') replies.push('250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 2147483647\r\n');
      else if (verb === 'DATA') {
        replies.push('354 End data with <CR><LF>.<CR><LF>\r\n');
        inData = true;
      } else if (verb === 'QUIT') {
        replies.push('221 2.0.0 Bye\r\n');
        sock.end(replies.join(''));
        return;
      } else if (verb === 'STAR') replies.push('502 5.5.1 STARTTLS not offered\r\n');
      else replies.push('250 2.0.0 Ok\r\n');
    }
    if (replies.length) sock.write(replies.join(''));
  });
});
server.maxConnections = 20000;
server.listen(port, host, () => process.stderr.write(`sink listening on ${host}:${port}\n`));
process.on('SIGTERM', () => {
  flush();
  process.exit(0);
});
