// The log of a process that handles mail (a listener, a worker). pino's default destination
// writes each line as it comes, through libuv's thread pool: under load that was a write, a
// futex wake and an eventfd round trip per log line, one line per message. Lines are gathered
// instead (up to LOG_BUFFER_BYTES) and written at most FLUSH_MS later, or at exit. A warning or
// an error is written at once, with what was gathered before it: those are read while they matter.
import { pino, type Logger, type LoggerOptions } from 'pino';

const LOG_BUFFER_BYTES = 4096;
const FLUSH_MS = 200;
/** pino's level number of `warn`. */
const WARN = 40;

export function mailLogger(options: LoggerOptions): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES });
  const timer = setInterval(() => {
    try {
      destination.flush();
    } catch {
      // closed or not ready yet: the next tick or the exit flush writes it
    }
  }, FLUSH_MS);
  timer.unref();
  destination.on('close', () => clearInterval(timer));
  return pino(
    {
      ...options,
      hooks: {
        logMethod(args, method, level) {
          method.apply(this, args);
          if (level < WARN) return;
          try {
            destination.flush();
          } catch {
            // not ready yet: the timer writes it
          }
        },
      },
    },
    destination,
  );
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
