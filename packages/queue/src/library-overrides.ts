// Every place @mailgw/queue relies on ioredis or BullMQ internals, and the check that the
// installed versions are the ones those were read in. Importing this module (every module of
// the package that needs an override imports it) throws on any other version: upgrading
// means re-reading the internals listed here, running the package's tests, then changing the
// pinned versions below and in package.json together.
//
// ioredis 6.0.0 (fast-pipeline.ts, applied per connection by connectRedis):
//   Commander#scriptsSet, #addedBuiltinSet   read, and emptied while a pipeline is built
//   Commander#pipeline                         replaced on that connection (own property)
//   Commander#defineCommand, #addBuiltinCommand wrapped on that connection (own property)
//   Pipeline constructor                       called with the emptied sets; instances get a
//                                              shared per-connection prototype
// ioredis 6.0.0 (piecewise-set.ts, used by mail-store.ts for a whole message of 16 KiB or more):
//   Redis#stream is the connection's socket; Redis#sendCommand on a ready connection writes
//   `command.toWritable(this.stream)` to `this.stream` synchronously (an own toWritable on the
//   Command instance writes the value's pieces to the corked socket itself); auto-pipelines
//   flush with setImmediate
// ioredis 6.0.0 (cluster-ready-check.ts, applied by connectRedis to a Cluster with the offline
//   queue off): Cluster#readyCheck(callback(err, state)) wrapped on that client (own property);
//   relies on it refusing a command to a node not yet ready with utils.CONNECTION_CLOSED_ERROR_MSG
//   ("Connection is closed.") while the client's status is "connect"
// BullMQ 6.7.0 (mail-store.ts, job-scan.ts, keys.ts):
//   addStandardJob-9.lua (with includes storeJob, isQueuePausedOrMaxed, addJobInTargetList,
//   getOrSetMaxEvents): lua/enqueue-message.lua writes what it writes for a job with a custom
//   id and only the options mail-store.ts MailJobOptions allows (none renamed by optsEncodeMap,
//   none taking another script): the job hash fields name, data, opts (Job's `attempts: 0` +
//   the default options + jobId), timestamp, delay, priority; the
//   "added" and "waiting" events (MAXLEN from meta opts.maxLenEvents, default 10000); LPUSH on
//   `wait`; ZADD `marker` 0 "0" unless meta has `paused` or `concurrency` ≤ LLEN `active`
//   the job hash `<prefix>:<queue>:<jobId>` and its `progress` field (JSON, as
//   Job.updateProgress writes it): the finish-message script sets the final progress and
//   deletes the body in one step (KeySpace.job)
//   the state keys `<prefix>:<queue>:wait|active` (lists, LPUSH: newest first) and
//   `prioritized|delayed|failed` (sorted sets) and the job hash fields data, progress and
//   failedReason: job-scan.ts reads them directly (KeySpace.bullState) for `mailgw queue messages`
//
// The helpers below are shared with the other packages that override library internals
// (@mailgw/listener: smtp-server; @mailgw/worker: nodemailer), so every such check reads and
// fails the same way.
import { createRequire } from 'node:module';

export class LibraryVersionError extends Error {
  override readonly name = 'LibraryVersionError';
}

/**
 * Throws unless `installed` is exactly `expected`. `overrides` says which mailgw module relies
 * on the internals, so the message tells the admin (or whoever upgraded) what to re-check.
 */
export function checkPinnedVersion(library: string, expected: string, installed: string, overrides: string): void {
  if (installed === expected) return;
  throw new LibraryVersionError(
    `${library} ${installed} is installed, but mailgw overrides internals of ${library} ${expected} exactly (${overrides}). ` +
      `Install ${library}@${expected} (npm ci restores the pinned version), or review every internal listed in ${overrides} against ${installed} and pin that version.`,
  );
}

/** The version of `library` that `fromUrl` (a module's import.meta.url) resolves to. */
export function installedVersion(library: string, fromUrl: string): string {
  return (createRequire(fromUrl)(`${library}/package.json`) as { version: string }).version;
}

export const IOREDIS_VERSION = '6.0.0';
export const BULLMQ_VERSION = '6.7.0';

const HERE = 'packages/queue/src/library-overrides.ts';
checkPinnedVersion('ioredis', IOREDIS_VERSION, installedVersion('ioredis', import.meta.url), HERE);
checkPinnedVersion('bullmq', BULLMQ_VERSION, installedVersion('bullmq', import.meta.url), HERE);

/** Makes `redis.pipeline()` (and so auto-pipelining) cheap on one connection (see fast-pipeline.ts). */
export { installFastPipeline } from './fast-pipeline.js';
