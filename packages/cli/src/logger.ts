// The log of a process that handles mail (a listener, a worker). pino's default destination
// writes each line through libuv's thread pool: under load that was a write, a futex wake and an
// eventfd round trip per log line, one line per message. Lines are written synchronously instead
// (one write(2) each, from the event loop): the same order, nothing held back, and nothing lost
// when the process is killed right after logging.
import { pino, type Logger, type LoggerOptions } from 'pino';

export function mailLogger(options: LoggerOptions): Logger {
  return pino(options, pino.destination({ dest: 1, sync: true }));
}

/** Writes what the log holds now (before telling the supervisor or a test harness "running"). */
export function flushLog(logger: Logger): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 1000);
    try {
      logger.flush(() => {
        clearTimeout(t);
        resolve();
      });
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}

/**
 * What every process logs when its tracking log cannot be written: the file (counted as a log
 * write failure by `metrics`, when the process has them) or the copy in Redis.
 */
export function trackingFailures(logger: Logger, metrics: () => { logWriteFailed(log: string): void } | null): { onFileError(err: Error): void; onStreamError(err: Error): void } {
  return {
    onFileError: (err) => {
      logger.error({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'tracking log write failed: message tracking is degraded (lines are dropped, mail flow goes on; tried again each minute)');
      metrics()?.logWriteFailed('tracking');
    },
    onStreamError: (err) => logger.error({ err: err.message }, 'tracking events could not be written to Redis: other machines do not see them (the file has them)'),
  };
}
