// Sizes and durations as admins write them: "36MB", "10m", Exchange's "00:05:00".

export type UnitResult = { ok: true; value: number } | { ok: false; error: string };

const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** Bytes from a number or "36MB"/"64 KB"/"1.5GB" (binary units, as Exchange uses). */
export function parseSize(input: number | string): UnitResult {
  if (typeof input === 'number') {
    return Number.isInteger(input) && input >= 0 ? { ok: true, value: input } : { ok: false, error: `${input} is not a whole number of bytes` };
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?\s*$/i.exec(input);
  if (!m) return { ok: false, error: `"${input}" is not a size (write bytes, or e.g. 64KB, 36MB, 2GB)` };
  const value = Math.round(Number(m[1]) * SIZE_UNITS[(m[2] ?? 'B').toUpperCase()]!);
  return { ok: true, value };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds from seconds (a number), "90s", "10m", "1h30m", "2d", or "[d.]hh:mm:ss". */
export function parseDuration(input: number | string): UnitResult {
  if (typeof input === 'number') {
    return input >= 0 && Number.isFinite(input) ? { ok: true, value: Math.round(input * 1000) } : { ok: false, error: `${input} is not a duration` };
  }
  const s = input.trim();
  const ts = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$/.exec(s);
  if (ts) {
    const [, d, h, m, sec] = ts;
    return { ok: true, value: ((Number(d ?? 0) * 24 + Number(h)) * 60 + Number(m)) * 60_000 + Number(sec) * 1000 };
  }
  if (!/^(\d+(?:\.\d+)?(ms|s|m|h|d)\s*)+$/i.test(s)) {
    return { ok: false, error: `"${input}" is not a duration (write e.g. 30s, 10m, 1h30m, 2d or 00:05:00)` };
  }
  let total = 0;
  for (const part of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/gi)) total += Number(part[1]) * DURATION_UNITS[part[2]!.toLowerCase()]!;
  return { ok: true, value: Math.round(total) };
}

export function formatSize(bytes: number): string {
  for (const [unit, mul] of [['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]] as const) {
    if (bytes >= mul && bytes % mul === 0) return `${bytes / mul}${unit}`;
  }
  return `${bytes}B`;
}

export function formatDuration(ms: number): string {
  for (const [unit, mul] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= mul && ms % mul === 0) return `${ms / mul}${unit}`;
  }
  return `${ms}ms`;
}
