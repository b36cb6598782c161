// One socket to a milter: connect within a timeout, write packets, read replies one by one,
// each within its own timeout. Every failure (refused, closed, timed out, broken packet)
// becomes a rejected promise with a reason; the socket is then destroyed.
import net from 'node:net';
import type { MilterAddress } from '@mailgw/config';
import { drained } from '@mailgw/mail';
import { PacketReader, type Packet } from './protocol.js';

export class MilterConnection {
  private readonly reader = new PacketReader();
  private readonly packets: Packet[] = [];
  private waiter: { resolve: (p: Packet) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket, private readonly where: string) {
    socket.on('data', (chunk: Buffer) => {
      let got: Packet[];
      try {
        got = this.reader.push(chunk);
      } catch (e) {
        this.fail(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      for (const p of got) {
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = null;
          w.resolve(p);
        } else this.packets.push(p);
      }
    });
    socket.on('error', (e) => this.fail(new Error(`milter ${where}: ${e.message}`)));
    socket.on('close', () => this.fail(new Error(`milter ${where} closed the connection`)));
  }

  static open(address: MilterAddress, timeoutMs: number): Promise<MilterConnection> {
    return new Promise((resolve, reject) => {
      const socket = address.kind === 'unix' ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`could not connect to milter ${address.text} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new MilterConnection(socket, address.text));
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`could not connect to milter ${address.text}: ${e.message}`));
      });
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.socket.destroy();
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(this.failure);
    }
  }

  /** Writes a packet; resolves once the socket can take more (backpressure). */
  async send(p: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.socket.write(p)) return;
    await drained(this.socket);
    if (this.failure) throw this.failure;
  }

  /** The next reply, within `timeoutMs` (past it the connection is dropped). */
  reply(timeoutMs: number, what: string): Promise<Packet> {
    const queued = this.packets.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`milter ${this.where} did not answer ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = {
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Sends `last` (SMFIC_QUIT, say) if still possible and closes. */
  close(last?: Buffer): void {
    if (!this.failure && last) this.socket.end(last);
    else this.socket.destroy();
    this.failure ??= new Error('closed');
  }
}
