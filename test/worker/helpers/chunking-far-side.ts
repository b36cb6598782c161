/**
 * A far side that speaks CHUNKING (RFC 3030), which smtp-server cannot: a small SMTP server on
 * loopback TCP written for tests. It advertises PIPELINING, 8BITMIME, SMTPUTF8 and, as asked,
 * CHUNKING and BINARYMIME; takes DATA (dot-unstuffed) and BDAT (the chunk's octets as they are),
 * records every command line and every message with its exact bytes and how it came.
 */
import net from 'node:net';

export interface ChunkingFarSideOptions {
  /** Advertise CHUNKING (default true). */
  chunking?: boolean;
  /** Advertise BINARYMIME (default false). */
  binaryMime?: boolean;
  /** Advertise PIPELINING (default true). */
  pipelining?: boolean;
  /** Reply to RCPT TO: null = 250; else an SMTP reply like "550 5.1.1 unknown". */
  rcpt?: (address: string) => string | null;
  /** Reply to BDAT LAST or the final dot: null = 250 (the message is recorded); else this reply. */
  last?: (raw: Buffer) => string | null;
}

export interface ChunkedMessage {
  readonly mailFrom: string;
  /** The MAIL FROM line's parameters, as written ("BODY=BINARYMIME", "SIZE=123", …). */
  readonly mailParams: readonly string[];
  readonly rcptTo: readonly string[];
  readonly raw: Buffer;
  readonly via: 'BDAT' | 'DATA';
  /** BDAT: the sizes of the chunks. */
  readonly chunks: readonly number[];
}

export interface ChunkingFarSide {
  readonly port: number;
  readonly messages: ChunkedMessage[];
  /** Every command line received, in order (chunk data not included). */
  readonly commands: string[];
  close(): Promise<void>;
}

export async function startChunkingFarSide(o: ChunkingFarSideOptions = {}): Promise<ChunkingFarSide> {
  const messages: ChunkedMessage[] = [];
  const commands: string[] = [];
  const sockets = new Set<net.Socket>();
  const ehlo = [...(o.pipelining === false ? [] : ['PIPELINING']), '8BITMIME', 'SMTPUTF8', ...(o.chunking === false ? [] : ['CHUNKING']), ...(o.binaryMime ? ['BINARYMIME'] : [])];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let mode: { kind: 'command' } | { kind: 'data' } | { kind: 'chunk'; remaining: number; last: boolean } = { kind: 'command' };
    let tx: { from: string; params: string[]; rcpt: string[]; parts: Buffer[]; chunks: number[] } | null = null;
    const say = (line: string) => socket.write(`${line}\r\n`);
    const finish = (via: 'BDAT' | 'DATA') => {
      const refused = o.last?.(Buffer.concat(tx!.parts));
      if (refused) {
        tx = null;
        return say(refused);
      }
      messages.push({ mailFrom: tx!.from, mailParams: tx!.params, rcptTo: tx!.rcpt, raw: Buffer.concat(tx!.parts), via, chunks: tx!.chunks });
      tx = null;
      say('250 2.0.0 queued');
    };
    const command = (line: string) => {
      commands.push(line);
      const verb = line.split(' ')[0]!.toUpperCase();
      if (verb === 'EHLO') return say(['250-far.test', ...ehlo.map((e, i) => `250${i === ehlo.length - 1 ? ' ' : '-'}${e}`)].join('\r\n'));
      if (verb === 'MAIL') {
        const m = /^MAIL FROM:<([^>]*)>(.*)$/i.exec(line);
        if (!m) return say('501 5.5.4 syntax');
        tx = { from: m[1]!, params: m[2]!.trim().split(/\s+/).filter(Boolean), rcpt: [], parts: [], chunks: [] };
        return say('250 2.1.0 ok');
      }
      if (verb === 'RCPT') {
        const m = /^RCPT TO:<([^>]*)>/i.exec(line);
        if (!tx || !m) return say('503 5.5.1 sequence');
        const refused = o.rcpt?.(m[1]!);
        if (refused) return say(refused);
        tx.rcpt.push(m[1]!);
        return say('250 2.1.5 ok');
      }
      if (verb === 'DATA') {
        if (!tx || tx.rcpt.length === 0) return say('503 5.5.1 sequence');
        if (tx.params.some((p) => p.toUpperCase() === 'BODY=BINARYMIME')) return say('503 5.5.1 BINARYMIME needs BDAT');
        mode = { kind: 'data' };
        return say('354 go ahead');
      }
      if (verb === 'BDAT' && o.chunking !== false) {
        const m = /^BDAT (\d+)( LAST)?$/i.exec(line);
        if (!m) return say('501 5.5.4 syntax');
        mode = { kind: 'chunk', remaining: Number(m[1]), last: !!m[2] };
        tx?.chunks.push(Number(m[1]));
        return;
      }
      if (verb === 'RSET') {
        tx = null;
        return say('250 2.0.0 ok');
      }
      if (verb === 'NOOP') return say('250 2.0.0 ok');
      if (verb === 'QUIT') {
        say('221 2.0.0 bye');
        return socket.end();
      }
      say('500 5.5.2 unknown command');
    };
    const pump = () => {
      for (;;) {
        if (mode.kind === 'chunk') {
          const take = Math.min(mode.remaining, buf.length);
          tx?.parts.push(buf.subarray(0, take));
          buf = buf.subarray(take);
          mode.remaining -= take;
          if (mode.remaining > 0) return;
          const last = mode.last;
          mode = { kind: 'command' };
          if (!tx || tx.rcpt.length === 0) say('503 5.5.1 sequence');
          else if (last) finish('BDAT');
          else say('250 2.0.0 chunk received');
          continue;
        }
        if (mode.kind === 'data') {
          const end = buf.indexOf('\r\n.\r\n');
          const atStart = buf.subarray(0, 3).equals(Buffer.from('.\r\n'));
          if (end < 0 && !atStart) return;
          const body = atStart ? Buffer.alloc(0) : buf.subarray(0, end + 2);
          buf = buf.subarray(atStart ? 3 : end + 5);
          // Dot-unstuffing: a line starting with ".." loses one dot.
          tx!.parts.push(Buffer.from(body.toString('latin1').replace(/(^|\r\n)\.\./g, '$1.'), 'latin1'));
          mode = { kind: 'command' };
          finish('DATA');
          continue;
        }
        const eol = buf.indexOf('\r\n');
        if (eol < 0) return;
        const line = buf.subarray(0, eol).toString('utf8');
        buf = buf.subarray(eol + 2);
        command(line);
      }
    };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      pump();
    });
    say('220 far.test ESMTP test far side');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    messages,
    commands,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
