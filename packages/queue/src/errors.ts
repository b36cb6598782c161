/**
 * Every failure to reach or use Redis surfaces as a QueueUnavailableError, so
 * that callers (the SMTP listener) can answer a temporary `451 4.3.0` without
 * knowing anything about Redis, ioredis or BullMQ.
 */
export class QueueUnavailableError extends Error {
  override readonly name = 'QueueUnavailableError';
  readonly code = 'EQUEUEUNAVAILABLE';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function isQueueUnavailableError(err: unknown): err is QueueUnavailableError {
  return err instanceof QueueUnavailableError;
}

/** Wraps any error thrown by a Redis operation into a QueueUnavailableError. */
export function toQueueUnavailable(err: unknown, operation: string): QueueUnavailableError {
  if (err instanceof QueueUnavailableError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new QueueUnavailableError(`mail queue unavailable (${operation}): ${detail}`, { cause: err });
}

/**
 * Races `promise` against a timer. On timeout, rejects with a
 * QueueUnavailableError; any error of `promise` is mapped the same way.
 * The late settlement of `promise` is swallowed (no unhandled rejection).
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, operation: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new QueueUnavailableError(`mail queue unavailable (${operation}): no answer from Redis within ${ms} ms`));
    }, ms);
    timer.unref?.();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(toQueueUnavailable(err, operation));
      },
    );
  });
}
