// The tarpit (tarpitInterval): an error reply to an unauthenticated client is held back for a
// while. Everything that follows it — later replies and the parser's permission to read the
// next command — waits behind it, so replies stay in order even for pipelined commands.
export class ReplyGate {
  private queue: Array<() => void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  get holding(): boolean {
    return this.queue !== null;
  }

  /** Runs `fn` now, or after the current hold. */
  run(fn: () => void): void {
    if (this.queue) this.queue.push(fn);
    else fn();
  }

  /** Runs `fn` after `ms`, and everything given to run() meanwhile after it. */
  hold(ms: number, fn: () => void): void {
    if (this.queue) {
      this.queue.push(fn);
      return;
    }
    this.queue = [fn];
    this.timer = setTimeout(() => this.release(), ms);
  }

  /** Drops whatever is held (the connection is gone). */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = null;
  }

  private release(): void {
    const q = this.queue ?? [];
    this.queue = null;
    this.timer = null;
    for (let i = 0; i < q.length; i++) {
      q[i]!();
      if (this.queue) {
        // Something released started a new hold: what was queued before it goes first.
        const fresh: Array<() => void> = this.queue;
        this.queue = [...q.slice(i + 1), ...fresh];
        return;
      }
    }
  }
}
