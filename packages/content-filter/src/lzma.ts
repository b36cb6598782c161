// LZMA and LZMA2 decoding, enough to read a 7z archive's header: 7-Zip compresses the list of
// file names with LZMA (LZMA2 by other writers), so the names cannot be judged without it.
// Follows Igor Pavlov's reference decoder (LzmaSpec.cpp, public domain) step by step; the whole
// output is one buffer of the size the archive declares (bounded by the caller), so a match's
// distance is checked against what has been written rather than a separate dictionary. No I/O;
// a malformed stream throws an Error saying where (the caller turns it into a reason).

const TOP = 1 << 24;
const BIT_MODEL_TOTAL = 1 << 11;
const MOVE_BITS = 5;
const PROB_INIT = BIT_MODEL_TOTAL >>> 1;
const STATES = 12;
const POS_BITS_MAX = 4;
const LIT_STATES = 7;
const LEN_TO_POS_STATES = 4;
const END_POS_MODEL_INDEX = 14;
const FULL_DISTANCES = 1 << (END_POS_MODEL_INDEX >>> 1);
const ALIGN_BITS = 4;
const MATCH_MIN_LEN = 2;

class RangeDecoder {
  private range = 0xffffffff;
  private code = 0;
  pos: number;
  constructor(
    private readonly b: Uint8Array,
    start: number,
    private readonly end: number,
  ) {
    if (end - start < 5) throw new Error('the compressed data is cut short');
    if (b[start] !== 0) throw new Error('the compressed data does not start as LZMA does');
    this.code = ((b[start + 1]! << 24) | (b[start + 2]! << 16) | (b[start + 3]! << 8) | b[start + 4]!) >>> 0;
    this.pos = start + 5;
    if (this.code === this.range) throw new Error('the compressed data does not start as LZMA does');
  }
  private next(): number {
    if (this.pos >= this.end) throw new Error('the compressed data is cut short');
    return this.b[this.pos++]!;
  }
  bit(probs: Uint16Array, i: number): number {
    const p = probs[i]!;
    const bound = (this.range >>> 11) * p;
    let bit: number;
    if (this.code < bound) {
      probs[i] = p + ((BIT_MODEL_TOTAL - p) >>> MOVE_BITS);
      this.range = bound;
      bit = 0;
    } else {
      probs[i] = p - (p >>> MOVE_BITS);
      this.code -= bound;
      this.range -= bound;
      bit = 1;
    }
    if (this.range < TOP) {
      this.range = (this.range << 8) >>> 0;
      this.code = ((this.code << 8) | this.next()) >>> 0;
    }
    return bit;
  }
  direct(count: number): number {
    let r = 0;
    for (let i = 0; i < count; i++) {
      this.range >>>= 1;
      let bit = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        bit = 1;
      }
      r = ((r << 1) | bit) >>> 0;
      if (this.range < TOP) {
        this.range = (this.range << 8) >>> 0;
        this.code = ((this.code << 8) | this.next()) >>> 0;
      }
    }
    return r;
  }
  /** The stream ended cleanly (what an end marker or the end of the data requires). */
  finishedOk(): boolean {
    return this.code === 0;
  }
}

function tree(rc: RangeDecoder, probs: Uint16Array, base: number, bits: number): number {
  let m = 1;
  for (let i = 0; i < bits; i++) m = (m << 1) + rc.bit(probs, base + m);
  return m - (1 << bits);
}

function reverseTree(rc: RangeDecoder, probs: Uint16Array, base: number, bits: number): number {
  let m = 1;
  let symbol = 0;
  for (let i = 0; i < bits; i++) {
    const bit = rc.bit(probs, base + m);
    m = (m << 1) + bit;
    symbol |= bit << i;
  }
  return symbol;
}

/** Choice, Choice2, then 16 low (3-bit) trees, 16 mid (3-bit) trees and one high (8-bit) tree. */
const LEN_LOW = 2;
const LEN_MID = LEN_LOW + (16 << 3);
const LEN_HIGH = LEN_MID + (16 << 3);
const LEN_PROBS = LEN_HIGH + 256;

function decodeLength(rc: RangeDecoder, p: Uint16Array, posState: number): number {
  if (rc.bit(p, 0) === 0) return tree(rc, p, LEN_LOW + (posState << 3), 3);
  if (rc.bit(p, 1) === 0) return 8 + tree(rc, p, LEN_MID + (posState << 3), 3);
  return 16 + tree(rc, p, LEN_HIGH, 8);
}

export interface LzmaProperties {
  readonly lc: number;
  readonly lp: number;
  readonly pb: number;
  readonly dictSize: number;
}

/** The lc/lp/pb byte (and dictionary size) of an LZMA stream, as 7z's coder properties and .lzma files hold them. */
export function lzmaProperties(b: Uint8Array): LzmaProperties {
  if (b.length < 5) throw new Error('LZMA properties are 5 bytes');
  const d = b[0]!;
  if (d >= 9 * 5 * 5) throw new Error('LZMA properties out of range');
  const dictSize = (b[1]! | (b[2]! << 8) | (b[3]! << 16) | (b[4]! << 24)) >>> 0;
  return { lc: d % 9, lp: Math.floor(d / 9) % 5, pb: Math.floor(d / 45), dictSize: Math.max(dictSize, 4096) };
}

/** The decoder's state: probabilities, the state machine and the four last distances (kept across LZMA2 chunks). */
class LzmaState {
  lc = 0;
  lp = 0;
  pb = 0;
  literal = new Uint16Array(0);
  readonly isMatch = new Uint16Array(STATES << POS_BITS_MAX);
  readonly isRep = new Uint16Array(STATES);
  readonly isRepG0 = new Uint16Array(STATES);
  readonly isRepG1 = new Uint16Array(STATES);
  readonly isRepG2 = new Uint16Array(STATES);
  readonly isRep0Long = new Uint16Array(STATES << POS_BITS_MAX);
  readonly posSlot = new Uint16Array(LEN_TO_POS_STATES << 6);
  readonly posDecoders = new Uint16Array(1 + FULL_DISTANCES - END_POS_MODEL_INDEX);
  readonly align = new Uint16Array(1 << ALIGN_BITS);
  readonly len = new Uint16Array(LEN_PROBS);
  readonly repLen = new Uint16Array(LEN_PROBS);
  state = 0;
  rep0 = 0;
  rep1 = 0;
  rep2 = 0;
  rep3 = 0;

  setProperties(lc: number, lp: number, pb: number): void {
    if (lc > 8 || lp > 4 || pb > 4) throw new Error('LZMA properties out of range');
    this.lc = lc;
    this.lp = lp;
    this.pb = pb;
    const size = 0x300 << (lc + lp);
    if (this.literal.length !== size) this.literal = new Uint16Array(size);
  }
  reset(): void {
    for (const a of [this.literal, this.isMatch, this.isRep, this.isRepG0, this.isRepG1, this.isRepG2, this.isRep0Long, this.posSlot, this.posDecoders, this.align, this.len, this.repLen]) a.fill(PROB_INIT);
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
  }
}

/**
 * Decodes LZMA data from `rc` into out[at, at + size): stops once `size` bytes are out, or at an
 * end marker (then fewer: the count is returned). `dictStart`: where the dictionary began (a
 * match may not reach before it; positions for lp/pb count from it).
 */
function decodeLzma(s: LzmaState, rc: RangeDecoder, out: Uint8Array, at: number, size: number, dictStart: number, allowEndMarker: boolean): number {
  let pos = at;
  const end = at + size;
  const pbMask = (1 << s.pb) - 1;
  const lpMask = (1 << s.lp) - 1;
  while (pos < end) {
    const posState = (pos - dictStart) & pbMask;
    const state = s.state;
    if (rc.bit(s.isMatch, (state << POS_BITS_MAX) + posState) === 0) {
      const prev = pos > dictStart ? out[pos - 1]! : 0;
      const base = 0x300 * ((((pos - dictStart) & lpMask) << s.lc) + (prev >>> (8 - s.lc)));
      let symbol = 1;
      if (state >= LIT_STATES) {
        if (s.rep0 + 1 > pos - dictStart) throw new Error('a match reaches before the start of the data');
        let matchByte = out[pos - s.rep0 - 1]!;
        do {
          const matchBit = (matchByte >>> 7) & 1;
          matchByte <<= 1;
          const bit = rc.bit(s.literal, base + ((1 + matchBit) << 8) + symbol);
          symbol = (symbol << 1) | bit;
          if (matchBit !== bit) break;
        } while (symbol < 0x100);
      }
      while (symbol < 0x100) symbol = (symbol << 1) | rc.bit(s.literal, base + symbol);
      out[pos++] = symbol - 0x100;
      s.state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
      continue;
    }
    let len: number;
    if (rc.bit(s.isRep, state) !== 0) {
      if (pos === dictStart) throw new Error('a repeated match before any data');
      if (rc.bit(s.isRepG0, state) === 0) {
        if (rc.bit(s.isRep0Long, (state << POS_BITS_MAX) + posState) === 0) {
          s.state = state < LIT_STATES ? 9 : 11;
          out[pos] = out[pos - s.rep0 - 1]!;
          pos++;
          continue;
        }
      } else {
        let dist: number;
        if (rc.bit(s.isRepG1, state) === 0) dist = s.rep1;
        else {
          if (rc.bit(s.isRepG2, state) === 0) dist = s.rep2;
          else {
            dist = s.rep3;
            s.rep3 = s.rep2;
          }
          s.rep2 = s.rep1;
        }
        s.rep1 = s.rep0;
        s.rep0 = dist;
      }
      len = decodeLength(rc, s.repLen, posState);
      s.state = state < LIT_STATES ? 8 : 11;
    } else {
      s.rep3 = s.rep2;
      s.rep2 = s.rep1;
      s.rep1 = s.rep0;
      len = decodeLength(rc, s.len, posState);
      s.state = state < LIT_STATES ? 7 : 10;
      s.rep0 = decodeDistance(s, rc, len);
      if (s.rep0 === 0xffffffff) {
        if (!allowEndMarker) throw new Error('an end marker where none may be');
        if (!rc.finishedOk()) throw new Error('data after the end marker');
        return pos - at;
      }
    }
    if (s.rep0 + 1 > pos - dictStart) throw new Error('a match reaches before the start of the data');
    len += MATCH_MIN_LEN;
    if (len > end - pos) throw new Error('a match runs past the declared size');
    const from = pos - s.rep0 - 1;
    for (let i = 0; i < len; i++) out[pos + i] = out[from + i]!; // overlapping on purpose: a run
    pos += len;
  }
  return size;
}

function decodeDistance(s: LzmaState, rc: RangeDecoder, len: number): number {
  const lenState = Math.min(len, LEN_TO_POS_STATES - 1);
  const slot = tree(rc, s.posSlot, lenState << 6, 6);
  if (slot < 4) return slot;
  const directBits = (slot >>> 1) - 1;
  let dist = ((2 | (slot & 1)) << directBits) >>> 0;
  if (slot < END_POS_MODEL_INDEX) return (dist + reverseTree(rc, s.posDecoders, dist - slot, directBits)) >>> 0;
  dist = (dist + ((rc.direct(directBits - ALIGN_BITS) << ALIGN_BITS) >>> 0)) >>> 0;
  return (dist + reverseTree(rc, s.align, 0, ALIGN_BITS)) >>> 0;
}

/**
 * `size` bytes decoded from the LZMA stream `data` with the 5 bytes of `properties` (7z's coder
 * properties); an end marker before them is an error (the size is what the archive declared).
 */
export function lzmaDecode(data: Uint8Array, properties: Uint8Array, size: number): Buffer {
  const p = lzmaProperties(properties);
  const s = new LzmaState();
  s.setProperties(p.lc, p.lp, p.pb);
  s.reset();
  const out = Buffer.alloc(size);
  const rc = new RangeDecoder(data, 0, data.length);
  const n = decodeLzma(s, rc, out, 0, size, 0, true);
  if (n !== size) throw new Error(`the data ends after ${n} of ${size} bytes`);
  return out;
}

/**
 * `size` bytes decoded from the LZMA2 stream `data` (7z's method 21: LZMA chunks and stored
 * chunks, each with its own sizes); the stream may end (control byte 0) at `size` or run on past it.
 */
export function lzma2Decode(data: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  const s = new LzmaState();
  let p = 0;
  let pos = 0;
  let dictStart = 0;
  let needDictReset = true;
  let needProps = true;
  while (pos < size) {
    if (p >= data.length) throw new Error('the compressed data is cut short');
    const control = data[p]!;
    if (control === 0) throw new Error(`the data ends after ${pos} of ${size} bytes`);
    if (control === 1 || control === 2) {
      // A stored chunk: 1 resets the dictionary.
      if (p + 3 > data.length) throw new Error('the compressed data is cut short');
      if (control === 1) {
        dictStart = pos;
        needDictReset = false;
      } else if (needDictReset) throw new Error('a chunk without the dictionary reset the stream must start with');
      const n = ((data[p + 1]! << 8) | data[p + 2]!) + 1;
      p += 3;
      if (p + n > data.length) throw new Error('the compressed data is cut short');
      if (n > size - pos) throw new Error('a chunk runs past the declared size');
      out.set(data.subarray(p, p + n), pos);
      p += n;
      pos += n;
      continue;
    }
    if (control < 0x80) throw new Error(`an unknown LZMA2 chunk (control byte ${control})`);
    if (p + 5 > data.length) throw new Error('the compressed data is cut short');
    const unpacked = ((control & 0x1f) << 16) + (data[p + 1]! << 8) + data[p + 2]! + 1;
    const packed = (data[p + 3]! << 8) + data[p + 4]! + 1;
    const reset = (control >>> 5) & 3;
    p += 5;
    if (reset === 3) {
      dictStart = pos;
      needDictReset = false;
    } else if (needDictReset) throw new Error('a chunk without the dictionary reset the stream must start with');
    if (reset >= 2) {
      if (p >= data.length) throw new Error('the compressed data is cut short');
      const d = data[p++]!;
      if (d >= 9 * 5 * 5) throw new Error('LZMA properties out of range');
      const lc = d % 9;
      const lp = Math.floor(d / 9) % 5;
      if (lc + lp > 4) throw new Error('LZMA2 properties out of range (lc + lp over 4)');
      s.setProperties(lc, lp, Math.floor(d / 45));
      needProps = false;
    } else if (needProps) throw new Error('an LZMA chunk before any properties');
    if (reset >= 1) s.reset();
    if (unpacked > size - pos) throw new Error('a chunk runs past the declared size');
    if (p + packed > data.length) throw new Error('the compressed data is cut short');
    const rc = new RangeDecoder(data, p, p + packed);
    decodeLzma(s, rc, out, pos, unpacked, dictStart, false);
    pos += unpacked;
    p += packed;
  }
  return out;
}
