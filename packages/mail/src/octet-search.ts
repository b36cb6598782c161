// How the worker's dot-stuffing finds CR and LF: in a latin1 copy of a chunk, where octet i is
// character i. V8's String#indexOf is a builtin, where each Buffer#indexOf call crosses into C++
// through a JavaScript wrapper, and the transform searches at every line (measured on 100 KB of
// 80-octet lines: 148 → 58 µs, the copy included; with Buffer#indexOf, in a loaded worker under
// 100 KB mail, no better). A copy may not exceed V8's string limit (512 MB), and a stored body
// reaches the worker as one chunk, so a larger chunk is searched in pieces; the transform
// carries its state across chunks anyway. The listener's bare CR/LF filter searches the chunk
// itself: there the copy's allocation cost more than it saved (line-endings.ts).

/** The largest chunk searched in one latin1 copy. */
export const SEARCH_WINDOW = 16 * 1024 * 1024;

/** `buf` in pieces of at most SEARCH_WINDOW octets, in order. */
export function searchPieces(buf: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < buf.length; at += SEARCH_WINDOW) pieces.push(buf.subarray(at, at + SEARCH_WINDOW));
  return pieces;
}
