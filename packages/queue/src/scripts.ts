// mailgw's Redis scripts, one file each in packages/queue/lua/ (as BullMQ keeps its own in
// src/commands/): a header comment says what the script is for, its KEYS, its ARGV and its
// result. They are defined on a connection with defineCommand, so they run by EVALSHA.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Script name → number of KEYS it takes. */
export const SCRIPTS = {
  'finish-message': 3,
  'enqueue-message': 9,
  'rate-take': 1,
  'lease-acquire': 1,
  'lease-refresh': 1,
  'compare-and-set': 1,
} as const;
export type ScriptName = keyof typeof SCRIPTS;

const cache = new Map<ScriptName, string>();

/** The Lua text of a script (read once; the lua/ folder sits beside src/ and dist/). */
export function scriptSource(name: ScriptName): string {
  let lua = cache.get(name);
  if (lua === undefined) {
    lua = readFileSync(new URL(`../lua/${name}.lua`, import.meta.url), 'utf8');
    cache.set(name, lua);
  }
  return lua;
}

/** The command name a script gets on a connection: "mailgw" + CamelCase of its file name. */
export function scriptCommand(name: ScriptName): string {
  return `mailgw${name.replace(/(^|-)([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase())}`;
}

/**
 * Defines the scripts on a connection (idempotent) and returns callers for them:
 * `scripts['rate-take'](key, ...args)`.
 */
export function defineScripts<N extends ScriptName>(redis: Redis, names: readonly N[]): Record<N, (...args: Array<string | number | Buffer>) => Promise<unknown>> {
  const out = {} as Record<N, (...args: Array<string | number | Buffer>) => Promise<unknown>>;
  const r = redis as unknown as Record<string, (...args: Array<string | number | Buffer>) => Promise<unknown>>;
  for (const name of names) {
    const cmd = scriptCommand(name);
    if (typeof r[cmd] !== 'function') redis.defineCommand(cmd, { numberOfKeys: SCRIPTS[name], lua: scriptSource(name) });
    out[name] = (...args) => r[cmd]!.apply(redis, args);
  }
  return out;
}
