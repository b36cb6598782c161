// gateway.yaml `processes`: how many listener and delivery worker processes `mailgw start`
// runs under its supervisor. `auto` (the default): one listener per core and half as many
// workers (at least one); or exact counts. `mailgw listen` and `mailgw worker` ignore it (one
// process each, for spreading over machines).
import { z } from 'zod';
import { intIn } from './zod-helpers.js';

export const MAX_PROCESSES = 256;

const counts = z.strictObject({
  listeners: intIn(0, MAX_PROCESSES).describe('Listener processes; they share every binding. 0: this machine only delivers (mail comes from `mailgw listen` elsewhere).'),
  workers: intIn(0, MAX_PROCESSES).describe('Delivery worker processes, each delivering queue.workerConcurrency messages at once. 0: this machine only listens (workers run elsewhere).'),
});

type Counts = z.output<typeof counts>;

/** `auto` (any case) or the counts object, with the counts' own errors (file + key) rather than a union's "invalid input". */
export const processesSchema = z
  .unknown()
  .transform((v, ctx): 'auto' | Counts => {
    if (typeof v === 'string' && v.trim().toLowerCase() === 'auto') return 'auto';
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)}: must be auto or { listeners: N, workers: N }` });
      return z.NEVER;
    }
    const r = counts.safeParse(v);
    if (!r.success) {
      for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message, path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)) });
      return z.NEVER;
    }
    if (r.data.listeners + r.data.workers === 0) {
      ctx.addIssue({ code: 'custom', message: 'give at least one listener or one worker process' });
      return z.NEVER;
    }
    return r.data;
  })
  .default('auto')
  .describe('Processes of mailgw start: auto (default: one listener per core, sharing every binding, and max(1, cores/2) delivery workers) or { listeners: N, workers: N } (either may be 0: workers 0 for a listen-only machine, listeners 0 for a delivery-only one). mailgw listen and mailgw worker run one process each.');

export type ProcessesConfig = z.output<typeof processesSchema>;

/** The process counts `mailgw start` runs for `processes` on a machine with `cores` cores. */
export function processCounts(p: ProcessesConfig, cores: number): { listeners: number; workers: number } {
  if (p === 'auto') {
    const n = Math.max(1, Math.floor(cores));
    return { listeners: n, workers: Math.max(1, Math.floor(n / 2)) };
  }
  return { listeners: p.listeners, workers: p.workers };
}
