// How many message bytes one worker process holds for its deliveries at once. A delivery reads
// the whole message into memory, so `workerConcurrency` alone would let 100 deliveries of 36 MB
// each hold 3.6 GB; the budget lets small mail run at full concurrency and makes large mail
// wait for room. Grants are in order of asking (a large message is not overtaken forever by
// small ones), and a message larger than the whole budget runs once nothing else holds any.
// Pure: no I/O, no timers.

export class ByteBudget {
  private held = 0;
  private readonly waiting: Array<{ bytes: number; grant: () => void }> = [];

  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new RangeError(`ByteBudget limit must be positive, not ${limit}`);
  }

  /** Bytes granted and not yet released. */
  get inUse(): number {
    return this.held;
  }

  /** Deliveries waiting for room. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Whether a request for `bytes` now would have to wait. */
  wouldWait(bytes: number): boolean {
    return this.waiting.length > 0 || !this.fits(Math.max(0, bytes));
  }

  /** Resolves, in order of asking, once `bytes` fit (or nothing else is held); call the returned function exactly once to give them back. */
  acquire(bytes: number): Promise<() => void> {
    const n = Math.max(0, bytes);
    if (this.waiting.length === 0 && this.fits(n)) return Promise.resolve(this.take(n));
    return new Promise((resolve) => this.waiting.push({ bytes: n, grant: () => resolve(this.take(n)) }));
  }

  private fits(n: number): boolean {
    return this.held === 0 || this.held + n <= this.limit;
  }

  private take(n: number): () => void {
    this.held += n;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= n;
      this.grantWaiting();
    };
  }

  private grantWaiting(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) this.waiting.shift()!.grant();
  }
}
