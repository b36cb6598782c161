// ioredis' Pipeline constructor copies every custom command of its connection onto each new
// pipeline as own properties. BullMQ defines some 65 Lua scripts on the connections it is
// given, so on the mail store's connection every pipeline cost ~47 µs, and with
// enableAutoPipelining every batch of commands builds one: 5 % of a listener's CPU and 10 % of
// a worker's in the benchmark. This override builds pipelines without the copies and gives
// them one shared prototype per connection that holds the commands instead: same methods,
// same `this`, same results. ioredis 6.0.0 reads the copies nowhere else (its `_shaToScript`
// map is written, never read). The version check lives in library-overrides.ts, which is the
// only module that exports this; a test checks that scripts still run through pipelines.
import type { Redis } from 'ioredis';

/** The Commander internals the Pipeline constructor reads, and the two that add commands. */
interface CommanderInternals {
  scriptsSet: Record<string, unknown>;
  addedBuiltinSet: Set<string>;
  pipeline(commands?: unknown[][]): object;
  defineCommand(...args: unknown[]): unknown;
  addBuiltinCommand(...args: unknown[]): unknown;
  [method: string]: unknown;
}

type PipelineClass = new (redis: unknown) => { addBatch(commands: unknown[][]): unknown };

const NO_SCRIPTS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;
const NO_BUILTINS: Set<string> = new Set();

/**
 * Makes `redis.pipeline()` (and so auto-pipelining) cheap on this connection: own properties
 * of this instance only, the Redis class and other connections are untouched.
 */
export function installFastPipeline(redis: Redis): void {
  const r = redis as unknown as CommanderInternals;
  const Pipeline = Object.getPrototypeOf(r.pipeline()).constructor as PipelineClass;
  // The connection's commands, for pipelines to inherit; built on first use and again after
  // a command is added (BullMQ loads its scripts when it first connects).
  let shared: object | null = null;
  const commands = (): object => {
    if (shared) return shared;
    const proto = Object.create(Pipeline.prototype) as Record<string, unknown>;
    for (const name of [...Object.keys(r.scriptsSet), ...r.addedBuiltinSet]) {
      proto[name] = r[name];
      proto[`${name}Buffer`] = r[`${name}Buffer`];
    }
    return (shared = proto);
  };
  for (const add of ['defineCommand', 'addBuiltinCommand'] as const) {
    const original = r[add];
    r[add] = (...args: unknown[]) => {
      shared = null;
      return original.apply(r, args);
    };
  }
  r.pipeline = function fastPipeline(commandList?: unknown[][]) {
    const scripts = r.scriptsSet;
    const builtins = r.addedBuiltinSet;
    r.scriptsSet = NO_SCRIPTS;
    r.addedBuiltinSet = NO_BUILTINS;
    let pipeline: InstanceType<PipelineClass>;
    try {
      pipeline = new Pipeline(r);
    } finally {
      r.scriptsSet = scripts;
      r.addedBuiltinSet = builtins;
    }
    Object.setPrototypeOf(pipeline, commands());
    if (Array.isArray(commandList)) pipeline.addBatch(commandList);
    return pipeline;
  };
}
