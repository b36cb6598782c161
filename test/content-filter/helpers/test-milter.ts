// A tiny milter server for tests: it speaks the milter protocol (version 6) over a real
// socket, records what the MTA sent (commands, macros, headers, body bytes), and answers as
// the message's Subject (or a recipient) tells it. Written from the protocol, not from our
// client, so it checks the client rather than mirroring it.
import net from 'node:net';

/** What one milter session saw. */
export interface SeenSession {
  commands: string[];
  macros: Record<string, string>;
  connect?: { hostname: string; family: string; address: string };
  helo?: string;
  mail?: string;
  rcpts: string[];
  headers: Array<[string, string]>;
  body: Buffer;
  bodyPackets: number;
  maxBodyPacket: number;
  aborted: boolean;
  quit: boolean;
  /** The actions (SMFIF_*) the MTA offered at option negotiation. */
  offeredActions?: number;
}

export interface TestMilter {
  readonly port: number;
  readonly address: string;
  readonly sessions: SeenSession[];
  /** The session whose Subject header was `subject`. */
  bySubject(subject: string): SeenSession | undefined;
  close(): Promise<void>;
}

export interface TestMilterOptions {
  /** Protocol flags the milter asks for at negotiation (SMFIP_*); default 0: every step, every reply. */
  protocol?: number;
  /** Actions it asks for (SMFIF_*); default add/change headers, replace body, quarantine. */
  actions?: number;
}

const pkt = (cmd: string, data: Buffer = Buffer.alloc(0)): Buffer => {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(data.length + 1, 0);
  h.write(cmd, 4, 'latin1');
  return Buffer.concat([h, data]);
};
const z = (...s: string[]): Buffer => Buffer.concat(s.map((x) => Buffer.from(`${x}\0`, 'latin1')));
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
};
const strings = (d: Buffer): string[] => d.toString('latin1').split('\0').slice(0, -1);

export async function startTestMilter(opts: TestMilterOptions = {}): Promise<TestMilter> {
  const sessions: SeenSession[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    const s: SeenSession = { commands: [], macros: {}, rcpts: [], headers: [], body: Buffer.alloc(0), bodyPackets: 0, maxBodyPacket: 0, aborted: false, quit: false };
    sessions.push(s);
    const subject = () => s.headers.find(([n]) => n.toLowerCase() === 'subject')?.[1].trim() ?? '';
    const send = (b: Buffer) => sock.write(b);
    const cont = () => send(pkt('c'));
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const cmd = String.fromCharCode(buf[4]!);
        const data = buf.subarray(5, 4 + len);
        buf = buf.subarray(4 + len);
        s.commands.push(cmd);
        handle(cmd, data);
      }
    });
    const handle = (cmd: string, data: Buffer) => {
      const proto = opts.protocol ?? 0;
      switch (cmd) {
        case 'O':
          s.offeredActions = data.readUInt32BE(4);
          return send(pkt('O', Buffer.concat([u32(6), u32(opts.actions ?? 0x1 | 0x2 | 0x10 | 0x20), u32(proto)])));
        case 'D': {
          const kv = strings(data.subarray(1));
          for (let i = 0; i + 1 < kv.length; i += 2) s.macros[kv[i]!] = kv[i + 1]!;
          return;
        }
        case 'C': {
          const host = strings(data)[0]!;
          const rest = data.subarray(host.length + 1);
          const family = String.fromCharCode(rest[0]!);
          s.connect = { hostname: host, family, address: family === '4' || family === '6' ? strings(rest.subarray(3))[0]! : '' };
          return proto & 0x1000 ? undefined : cont();
        }
        case 'H':
          s.helo = strings(data)[0];
          if (s.helo === 'helo-reject.test') return send(pkt('r'));
          return cont();
        case 'M': {
          // The sender's local part tells it what to answer at MAIL.
          const m = (s.mail = strings(data)[0]!);
          if (m.startsWith('<mail-reject@')) return send(pkt('r'));
          if (m.startsWith('<mail-tempfail@')) return send(pkt('t'));
          if (m.startsWith('<mail-discard@')) return send(pkt('d'));
          if (m.startsWith('<mail-accept@')) return send(pkt('a'));
          if (m.startsWith('<mail-close@')) return sock.destroy();
          return cont();
        }
        case 'R': {
          // So does each recipient's, at RCPT.
          const r = strings(data)[0]!;
          s.rcpts.push(r);
          if (r.startsWith('<milter-reject@')) return send(pkt('r'));
          if (r.startsWith('<milter-tempfail@')) return send(pkt('t'));
          if (r.startsWith('<milter-unknown@')) return send(pkt('y', z(`550 5.1.1 ${r}: Recipient address rejected: unknown in the test milter`)));
          if (r.startsWith('<milter-wrongclass@')) return send(pkt('y', z('250 2.0.0 not a refusal')));
          if (r.startsWith('<milter-discard@')) return send(pkt('d'));
          if (r.startsWith('<milter-close@')) return sock.destroy();
          return cont();
        }
        case 'T':
          return cont();
        case 'L': {
          const [n, v] = strings(data);
          s.headers.push([n!, v!]);
          return proto & 0x80 ? undefined : cont();
        }
        case 'N':
          return cont();
        case 'B':
          s.bodyPackets++;
          s.maxBodyPacket = Math.max(s.maxBodyPacket, data.length);
          s.body = Buffer.concat([s.body, data]);
          if (subject() === 'close') return sock.destroy();
          if (subject() === 'skip') return send(pkt('s'));
          return cont();
        case 'E':
          return eom();
        case 'A':
          s.aborted = true;
          return;
        case 'Q':
          s.quit = true;
          return sock.end();
        default:
          return;
      }
    };
    const eom = () => {
      switch (subject()) {
        case 'reject':
          return send(pkt('r'));
        case 'tempfail':
          return send(pkt('t'));
        case 'discard':
          return send(pkt('d'));
        case 'replycode':
          return send(pkt('y', z('554 5.7.0 The test milter says no')));
        case 'slow':
          return; // never answers
        case 'progress':
          send(pkt('p'));
          setTimeout(() => send(pkt('p')), 150);
          setTimeout(() => send(Buffer.concat([pkt('h', z('X-Progressed', 'yes')), pkt('a')])), 300);
          return;
        case 'delrcpt':
          return send(Buffer.concat([pkt('-', z('<alice@contoso.test>')), pkt('a')]));
        // Envelope changes (a milter that asked for ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM).
        case 'addrcpt':
          return send(Buffer.concat([pkt('+', z('<archive@contoso.test>')), pkt('2', z('<journal@fabrikam.test>', 'NOTIFY=NEVER')), pkt('+', z('<ALICE@contoso.test>')), pkt('a')]));
        case 'replace-rcpt':
          return send(Buffer.concat([pkt('-', z('<Alice@Contoso.test>')), pkt('+', z('<desk@contoso.test>')), pkt('-', z('<nobody@contoso.test>')), pkt('c')]));
        case 'chgfrom':
          return send(Buffer.concat([pkt('e', z('<SRS0=ab12=XY=example.net=sender@contoso.test>', 'SIZE=1000')), pkt('a')]));
        case 'chgfrom-null':
          return send(Buffer.concat([pkt('e', z('<>')), pkt('a')]));
        case 'addrcpt-bad':
          return send(Buffer.concat([pkt('+', z('<not an address>')), pkt('a')]));
        case 'addrcpt-utf8':
          return send(Buffer.concat([pkt('+', Buffer.from('<jörg@contoso.test>\0', 'utf8')), pkt('a')]));
        case 'addrcpt-quarantine':
          return send(Buffer.concat([pkt('+', z('<archive@contoso.test>')), pkt('q', z('held with an added recipient')), pkt('a')]));
        case 'quarantine':
          return send(Buffer.concat([pkt('q', z('held by the test milter')), pkt('a')]));
        case 'modify':
          return send(
            Buffer.concat([
              pkt('h', z('X-Milter', 'added at the bottom')),
              pkt('i', Buffer.concat([u32(0), z('X-Milter-Top', 'inserted at the top')])),
              pkt('m', Buffer.concat([u32(1), z('Subject', '[milter] modify')])),
              pkt('m', Buffer.concat([u32(1), z('X-Remove-Me', '')])),
              pkt('b', Buffer.from('replaced by ')),
              pkt('b', Buffer.from('the milter\r\n')),
              pkt('c'),
            ]),
          );
        default:
          return send(pkt('a'));
      }
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `inet:127.0.0.1:${port}`,
    sessions,
    bySubject: (subject) => sessions.find((s) => s.headers.some(([n, v]) => n.toLowerCase() === 'subject' && v.trim() === subject)),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
