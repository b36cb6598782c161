// A whole message went to Redis through three copies: the header and the body's pieces joined
// into one buffer, ioredis' Command#toWritable copying the arguments into one RESP frame, and
// the auto-pipeline joining its batch's frames into one more. Each copy of a 100 KB message is
// a new 100 KB buffer outside V8's heap, and such allocations are what trigger most of a
// loaded listener's scavenges (--trace-gc: "external memory pressure", 4 to 6 ms each). Here
// a SET whose value is given in pieces is written straight to the connection's socket while it
// is corked: the pieces reach the kernel in one writev, uncopied, together with whatever the
// auto-pipeline writes in the same turn of the event loop (the enqueue script, after it).
//
// Relies on ioredis 6.0.0 (library-overrides.ts pins it): Redis#sendCommand on a ready
// connection writes `command.toWritable(this.stream)` to `this.stream` synchronously, and
// Redis#stream is the connection's socket (net.Socket or tls.TLSSocket).
import { Command, type Redis } from 'ioredis';
import './library-overrides.js';

/** A whole message from this size on is stored by `setInPieces`; smaller ones are joined (cheap) and sent auto-pipelined. */
export const PIECEWISE_SET_BYTES = 16 * 1024;

interface CorkableSocket {
  readonly writable: boolean;
  cork(): void;
  uncork(): void;
  write(chunk: string | Buffer): boolean;
}

function socketOf(redis: Redis): CorkableSocket | null {
  const stream = (redis as unknown as { stream?: CorkableSocket }).stream;
  return stream && typeof stream.cork === 'function' && stream.writable ? stream : null;
}

/**
 * Holds the connection's writes until the auto-pipeline has written the commands issued in
 * this turn of the event loop (it flushes with setImmediate, so an immediate queued after
 * the commands runs after it). Returns false when the connection cannot take a direct
 * write now (not ready, or a cluster client): the caller uses plain commands.
 */
export function corkUntilPipelined(redis: Redis): (() => void) | false {
  const socket = redis.status === 'ready' ? socketOf(redis) : null;
  if (!socket) return false;
  socket.cork();
  return () => setImmediate(() => socket.uncork());
}

/**
 * `SET key <pieces joined> EX ttlSeconds`, the pieces written as they are. Only on a connection
 * `corkUntilPipelined` accepted, in the same tick.
 */
export function setInPieces(redis: Redis, key: string, pieces: readonly Buffer[], bytes: number, ttlSeconds: number): Promise<unknown> {
  const ttl = String(ttlSeconds);
  const keyBytes = Buffer.byteLength(key);
  // The arguments are what a log or a cluster's slot lookup would read; the frame is written below.
  const command = new Command('set', [key, '', 'EX', ttl], { replyEncoding: 'utf8' });
  command.toWritable = (target: object) => {
    const socket = target as CorkableSocket;
    socket.write(`*5\r\n$3\r\nset\r\n$${keyBytes}\r\n${key}\r\n$${bytes}\r\n`);
    for (const piece of pieces) if (piece.length > 0) socket.write(piece);
    return `\r\n$2\r\nEX\r\n$${ttl.length}\r\n${ttl}\r\n`;
  };
  redis.sendCommand(command);
  return command.promise;
}
