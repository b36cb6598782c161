// A far side written on raw sockets, for what a library server hides: it keeps the exact bytes
// of every DATA as they came over the wire (to see bare CR/LF and dot-stuffing), every command
// line, and it can reset a connection (TCP RST) in the middle of DATA or right after the final
// dot, before answering, as a broken or hostile next hop does.
import net from 'node:net';

export type SinkAction = 'accept' | 'reset-mid-data' | 'reset-after-dot';

export interface SinkMessage {
  readonly mailFrom: string;
  readonly rcptTo: string[];
  /** DATA as received, dot-stuffed, up to (without) the terminating CRLF.CRLF. */
  readonly wire: Buffer;
  /** The message: dot-stuffing removed. */
  readonly raw: Buffer;
}

export interface RawSink {
  readonly port: number;
  /** Messages whose DATA arrived in full (including those then reset before the reply). */
  readonly messages: SinkMessage[];
  /** Every command line received, in order. */
  readonly commands: string[];
  readonly resets: { midData: number; afterDot: number };
  close(): Promise<void>;
}

/**
 * The DATA at the head of `buf`, once its end (CRLF.CRLF, or a lone ".\r\n" right after the
 * 354: an empty message, as a client ends a DATA it has no recipient for) has arrived: as on
 * the wire (dot-stuffed, without the end) and as the message (dot-stuffing removed); null
 * while it has not.
 */
export function takeData(buf: Buffer): { wire: Buffer; raw: Buffer; empty: boolean; rest: Buffer } | null {
  if (buf.subarray(0, 3).toString('latin1') === '.\r\n') return { wire: Buffer.alloc(0), raw: Buffer.alloc(0), empty: true, rest: buf.subarray(3) };
  const end = buf.indexOf('\r\n.\r\n');
  if (end < 0) return null;
  const wire = buf.subarray(0, end);
  const raw = Buffer.from(`${wire.toString('latin1')}\r\n`.replace(/^\./gm, ''), 'latin1');
  return { wire, raw, empty: false, rest: buf.subarray(end + 5) };
}

/** Stops a test server: its open connections dropped, then the listening socket closed. */
export function closeServer(server: net.Server, sockets: Iterable<net.Socket>): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
}

/**
 * `decide(id, attempt)` picks what happens to the attempt-th delivery (1-based) of the message
 * whose X-Load-Id is `id` (null when it has none).
 */
export async function startRawSink(decide: (id: string | null, attempt: number) => SinkAction = () => 'accept'): Promise<RawSink> {
  const messages: SinkMessage[] = [];
  const commands: string[] = [];
  const attempts = new Map<string, number>();
  const resets = { midData: 0, afterDot: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    let inData = false;
    let mailFrom = '';
    let rcptTo: string[] = [];
    let action: SinkAction | null = null;
    const send = (s: string) => socket.write(`${s}\r\n`);
    send('220 sink.test ESMTP');
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (inData) {
          if (action === null) {
            const head = buf.toString('latin1', 0, Math.min(buf.length, 4096));
            const m = /\r\nX-Load-Id: (\S+)\r\n/.exec(`\r\n${head}`);
            if (m || buf.includes('\r\n\r\n')) {
              const id = m?.[1] ?? null;
              const n = id ? (attempts.get(id) ?? 0) + 1 : 1;
              if (id) attempts.set(id, n);
              action = decide(id, n);
            }
          }
          if (action === 'reset-mid-data' && buf.length > 512) {
            resets.midData++;
            socket.resetAndDestroy();
            return;
          }
          const data = takeData(buf);
          if (!data) return;
          buf = data.rest;
          inData = false;
          if (!data.empty) messages.push({ mailFrom, rcptTo, wire: data.wire, raw: data.raw });
          if (action === 'reset-after-dot') {
            resets.afterDot++;
            socket.resetAndDestroy();
            return;
          }
          send('250 2.0.0 accepted');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.toString('latin1', 0, nl);
        buf = buf.subarray(nl + 2);
        commands.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') send('250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME');
        else if (verb === 'HELO') send('250 sink.test');
        else if (verb === 'MAIL') {
          mailFrom = /<([^>]*)>/.exec(line)?.[1] ?? '';
          rcptTo = [];
          send('250 2.1.0 ok');
        } else if (verb === 'RCPT') {
          rcptTo.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          send('250 2.1.5 ok');
        } else if (verb === 'DATA') {
          inData = true;
          action = null;
          send('354 go ahead');
        } else if (verb === 'RSET' || verb === 'NOOP') send('250 2.0.0 ok');
        else if (verb === 'QUIT') {
          send('221 2.0.0 bye');
          socket.end();
          return;
        } else send('502 5.5.2 not here');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    messages,
    commands,
    resets,
    close: () => closeServer(server, sockets),
  };
}
