// The milter wire protocol, version 6 (Sendmail's libmilter mfdef.h; Postfix's MILTER_README
// describes the MTA side): packets are a 32-bit big-endian length (command byte included),
// one command byte and its data. Pure encoding and decoding; the socket is in connection.ts.

export const MILTER_VERSION = 6;
/** Body chunks are at most this big (MILTER_CHUNK_SIZE). */
export const MILTER_CHUNK_SIZE = 65_535;
/** A reply larger than this is a broken milter (libmilter's own limit with SMFIP_MDS_1M is 1 MB). */
export const MAX_PACKET = 2 * 1024 * 1024;

/** MTA → milter commands (SMFIC_*). */
export const C = {
  ABORT: 'A',
  BODY: 'B',
  CONNECT: 'C',
  MACRO: 'D',
  BODYEOB: 'E',
  HELO: 'H',
  QUIT_NC: 'K',
  HEADER: 'L',
  MAIL: 'M',
  EOH: 'N',
  OPTNEG: 'O',
  QUIT: 'Q',
  RCPT: 'R',
  DATA: 'T',
  UNKNOWN: 'U',
} as const;

/** Milter → MTA replies (SMFIR_*). */
export const R = {
  ADDRCPT: '+',
  DELRCPT: '-',
  ADDRCPT_PAR: '2',
  SHUTDOWN: '4',
  ACCEPT: 'a',
  REPLBODY: 'b',
  CONTINUE: 'c',
  DISCARD: 'd',
  CHGFROM: 'e',
  CONN_FAIL: 'f',
  ADDHEADER: 'h',
  INSHEADER: 'i',
  SETSYMLIST: 'l',
  CHGHEADER: 'm',
  PROGRESS: 'p',
  QUARANTINE: 'q',
  REJECT: 'r',
  SKIP: 's',
  TEMPFAIL: 't',
  REPLYCODE: 'y',
  OPTNEG: 'O',
} as const;

/** Actions a milter may take at end of message (SMFIF_*). */
export const F = {
  ADDHDRS: 0x1,
  CHGBODY: 0x2,
  ADDRCPT: 0x4,
  DELRCPT: 0x8,
  CHGHDRS: 0x10,
  QUARANTINE: 0x20,
  CHGFROM: 0x40,
  ADDRCPT_PAR: 0x80,
  SETSYMLIST: 0x100,
} as const;

/** Protocol steps a milter may skip or not reply to (SMFIP_*). */
export const P = {
  NOCONNECT: 0x1,
  NOHELO: 0x2,
  NOMAIL: 0x4,
  NORCPT: 0x8,
  NOBODY: 0x10,
  NOHDRS: 0x20,
  NOEOH: 0x40,
  NR_HDR: 0x80,
  NOUNKNOWN: 0x100,
  NODATA: 0x200,
  SKIP: 0x400,
  RCPT_REJ: 0x800,
  NR_CONN: 0x1000,
  NR_HELO: 0x2000,
  NR_MAIL: 0x4000,
  NR_RCPT: 0x8000,
  NR_DATA: 0x10000,
  NR_UNKN: 0x20000,
  NR_EOH: 0x40000,
  NR_BODY: 0x80000,
  HDR_LEADSPC: 0x100000,
} as const;

/**
 * What mailgw offers: header additions, insertions and changes, body replacement, quarantine,
 * and envelope changes (ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM). Not offered: SETSYMLIST. A
 * milter may use only what it asked for at negotiation; anything else fails the message with
 * its defaultAction.
 */
export const MTA_ACTIONS = F.ADDHDRS | F.CHGBODY | F.CHGHDRS | F.QUARANTINE | F.ADDRCPT | F.ADDRCPT_PAR | F.DELRCPT | F.CHGFROM;
/** Every step may be skipped or left without reply, the milter may SKIP the body, and header values may keep their leading space. */
export const MTA_PROTOCOL =
  P.NOCONNECT | P.NOHELO | P.NOMAIL | P.NORCPT | P.NOBODY | P.NOHDRS | P.NOEOH | P.NR_HDR | P.NOUNKNOWN | P.NODATA | P.SKIP |
  P.NR_CONN | P.NR_HELO | P.NR_MAIL | P.NR_RCPT | P.NR_DATA | P.NR_UNKN | P.NR_EOH | P.NR_BODY | P.HDR_LEADSPC;

/** Macro stages (SMFIM_*), the first byte of a SMFIC_MACRO packet names the command they go with. */
export type Part = Buffer | string;

const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'latin1'), Buffer.alloc(1)]);

/** One packet: length, command, data. Strings in `parts` are written as NUL-terminated. */
export function packet(cmd: string, ...parts: Part[]): Buffer {
  const data = Buffer.concat(parts.map((p) => (typeof p === 'string' ? cstr(p) : p)));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(data.length + 1, 0);
  head.write(cmd, 4, 'latin1');
  return Buffer.concat([head, data]);
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

export function optneg(version: number, actions: number, protocol: number): Buffer {
  return packet(C.OPTNEG, u32(version), u32(actions), u32(protocol));
}

/** SMFIC_MACRO for command `cmd`: name/value pairs. */
export function macros(cmd: string, values: Record<string, string>): Buffer {
  const parts: Part[] = [Buffer.from(cmd, 'latin1')];
  for (const [k, v] of Object.entries(values)) parts.push(k, v);
  return packet(C.MACRO, ...parts);
}

/** SMFIC_CONNECT: host name, family ('4', '6', 'U' or 'L' unknown), port, address. */
export function connect(hostname: string, ip: string, port: number): Buffer {
  const family = ip.includes(':') ? '6' : /^\d+\.\d+\.\d+\.\d+$/.test(ip) ? '4' : 'L';
  if (family === 'L') return packet(C.CONNECT, hostname, Buffer.from('L', 'latin1'));
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port & 0xffff, 0);
  return packet(C.CONNECT, hostname, Buffer.from(family, 'latin1'), p, ip);
}

export interface Packet {
  readonly cmd: string;
  readonly data: Buffer;
}

/** Splits a byte stream into packets. */
export class PacketReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns the complete packets, or throws on a nonsensical length. */
  push(chunk: Buffer): Packet[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Packet[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len < 1 || len > MAX_PACKET) throw new Error(`milter sent a packet of length ${len}`);
      if (this.buf.length < 4 + len) break;
      out.push({ cmd: String.fromCharCode(this.buf[4]!), data: this.buf.subarray(5, 4 + len) });
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}

/** NUL-terminated strings in `data`, from `offset`. */
export function cstrings(data: Buffer, offset = 0): string[] {
  const out: string[] = [];
  let start = offset;
  for (let i = offset; i < data.length; i++) {
    if (data[i] === 0) {
      out.push(data.subarray(start, i).toString('latin1'));
      start = i + 1;
    }
  }
  if (start < data.length) out.push(data.subarray(start).toString('latin1'));
  return out;
}
