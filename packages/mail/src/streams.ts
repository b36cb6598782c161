// Backpressure on a writable stream: after write() returned false, wait for 'drain', or for
// 'close' (a stream destroyed meanwhile never drains), and take both listeners off whichever
// came. Written by hand in each place before, one of them left a 'close' listener behind on
// every wait (a large BDAT message piled them up).
import type { EventEmitter } from 'node:events';

/** Resolves once `stream` drains or closes. */
export function drained(stream: EventEmitter): Promise<void> {
  return new Promise<void>((resolve) => {
    const go = () => {
      stream.off('drain', go);
      stream.off('close', go);
      resolve();
    };
    stream.once('drain', go);
    stream.once('close', go);
  });
}
