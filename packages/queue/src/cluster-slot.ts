/**
 * Redis Cluster's key → slot function, as CLUSTER KEYSLOT computes it: CRC16-XMODEM (polynomial
 * 0x1021, initial value 0) of the key's hash tag (the bytes between the first `{` and the first
 * `}` after it, when not empty) or of the whole key, mod 16384. Pure: shard placement picks hash
 * tags with it without asking Redis.
 */
export const CLUSTER_SLOTS = 16384;

const TABLE: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let b = 0; b < 8; b++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** CRC16-XMODEM of `data` (a string is taken as its UTF-8 bytes). */
export function crc16(data: Uint8Array | string): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

/** The part of `key` Redis Cluster hashes: its first non-empty `{…}`, else the whole key. */
export function hashedPart(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

/** The Redis Cluster slot of `key` (what CLUSTER KEYSLOT answers). */
export function keySlot(key: string): number {
  return crc16(hashedPart(key)) % CLUSTER_SLOTS;
}
