// How every long-running mailgw command stops: the first SIGTERM or SIGINT starts its drain;
// a second one exits at once (an admin pressing Ctrl-C twice means it).
import type { Logger } from 'pino';

/** Resolves with the first SIGTERM/SIGINT; a second one logs `secondMessage` and exits 1. */
export function firstSignal(logger: Logger, secondMessage: string): Promise<string> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (sig: NodeJS.Signals) => {
      if (seen) {
        logger.warn({ signal: sig }, secondMessage);
        process.exit(1);
      }
      seen = true;
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}
