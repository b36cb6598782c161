// Header changes the filters ask for, applied to the fields of a header section. Pure.
import type { HeaderField } from './header-block.js';
import type { HeaderEdit } from './filter.js';

/** A header field name: printable US-ASCII but ':' (RFC 5322 3.6.8). */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * One field, written: `Name: value` with CRLF line ends. A value with line breaks stays
 * folded (each continuation starts with white space); control characters and empty
 * continuation lines, which would end the header section, are removed.
 */
export function formatField(name: string, value: string): Buffer {
  if (!FIELD_NAME.test(name)) throw new RangeError(`not a header field name: ${JSON.stringify(name)}`);
  const lines = value
    // eslint-disable-next-line no-control-regex
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '')
    .split(/\r?\n|\r/)
    .map((l, i) => (i === 0 ? l.trim() : l.replace(/^[ \t]*/, '\t')))
    .filter((l, i) => i === 0 || l.trim() !== '');
  return Buffer.from(`${name}: ${lines.join('\r\n')}\r\n`, 'utf8');
}

export interface EditedHeader {
  /** Fields added at the top (trace fields), in the order they were asked for. */
  readonly top: readonly Buffer[];
  /** The original fields as edited, then fields added at the bottom. */
  readonly fields: readonly Buffer[];
}

/** Applies `edits` in order to `fields` (the header as it will be stored, without our own additions). */
export function applyHeaderEdits(fields: readonly HeaderField[], edits: readonly HeaderEdit[]): EditedHeader {
  const list: Array<{ name: string; raw: Buffer }> = fields.map((f) => ({ name: f.name, raw: f.raw }));
  const top: Buffer[] = [];
  const nth = (name: string, index: number): number => {
    let seen = 0;
    for (let i = 0; i < list.length; i++) if (list[i]!.name === name && ++seen === index) return i;
    return -1;
  };
  for (const e of edits) {
    const name = e.name.toLowerCase();
    if (!FIELD_NAME.test(e.name)) continue; // a filter's nonsense name is ignored, never written
    if (e.op === 'add') {
      const raw = formatField(e.name, e.value);
      if (e.top) top.push(raw);
      else list.push({ name, raw });
    } else if (e.op === 'remove') {
      if (e.index === undefined) {
        for (let i = list.length - 1; i >= 0; i--) if (list[i]!.name === name) list.splice(i, 1);
      } else {
        const i = nth(name, e.index);
        if (i >= 0) list.splice(i, 1);
      }
    } else {
      const i = nth(name, e.index);
      // Milter semantics: an empty value deletes the field; a missing one is added.
      if (e.value === '') {
        if (i >= 0) list.splice(i, 1);
      } else if (i >= 0) list[i] = { name, raw: formatField(e.name, e.value) };
      else list.push({ name, raw: formatField(e.name, e.value) });
    }
  }
  return { top, fields: list.map((f) => f.raw) };
}
