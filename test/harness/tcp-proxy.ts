/**
 * Test harness: a TCP proxy on loopback in front of a real server, to see and break the
 * connections a client keeps: how many it opened, how many are open, and the faults a network
 * or a server restart makes (cut every connection, stop answering on the open ones, refuse new
 * ones). Real sockets both ways; nothing is simulated past the proxy.
 *
 *   const p = await startTcpProxy(ldap.port);   // 127.0.0.1:p.port → 127.0.0.1:ldap.port
 *   p.accepted; p.open;                          // connections so far / now
 *   p.cut();                                     // destroys every open connection (both sides)
 *   p.silence();                                 // open connections stop carrying the server's answers ('newest': only the last one)
 *   await p.refuse(); await p.listen();          // new connections refused, then taken again (same port)
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted since the start. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Bytes the clients sent so far (all connections). */
  readonly bytesFromClients: number;
  /** Bytes the client of the newest open connection sent on it so far. */
  readonly bytesFromNewest: number;
  cut(): void;
  /** The server's answers on the connections open now (or only the newest) are dropped from here on (new connections are not affected). */
  silence(which?: 'all' | 'newest'): void;
  /** Stops listening: new connections are refused (the open ones go on). */
  refuse(): Promise<void>;
  /** Listens again on the same port. */
  listen(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; server: net.Socket; silenced: boolean; fromClient: number }>();
  let accepted = 0;
  let bytesFromClients = 0;
  const onConnection = (client: net.Socket) => {
    accepted++;
    // No Nagle on either side: the proxy must not add the 40 ms stalls of a delayed ACK.
    const server = net.connect({ port: targetPort, host: targetHost, noDelay: true });
    client.setNoDelay(true);
    const pair = { client, server, silenced: false, fromClient: 0 };
    pairs.add(pair);
    const end = () => {
      client.destroy();
      server.destroy();
      pairs.delete(pair);
    };
    client.on('data', (b: Buffer) => {
      bytesFromClients += b.length;
      pair.fromClient += b.length;
      server.write(b);
    });
    server.on('data', (b: Buffer) => {
      if (!pair.silenced) client.write(b);
    });
    client.on('close', end).on('error', end);
    server.on('close', end).on('error', end);
  };
  let listener = net.createServer(onConnection);
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as net.AddressInfo).port;
  // close() stops accepting at once; its callback would wait for the open connections to end.
  const stopListening = async () => void listener.close();
  const cut = () => {
    for (const p of [...pairs]) {
      p.client.destroy();
      p.server.destroy();
      pairs.delete(p);
    }
  };
  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    get bytesFromClients() {
      return bytesFromClients;
    },
    get bytesFromNewest() {
      return [...pairs].at(-1)?.fromClient ?? 0;
    },
    cut,
    silence(which = 'all') {
      const open = [...pairs];
      for (const p of which === 'newest' ? open.slice(-1) : open) p.silenced = true;
    },
    refuse: stopListening,
    async listen() {
      listener = net.createServer(onConnection);
      await new Promise<void>((resolve, reject) => listener.once('error', reject).listen(port, '127.0.0.1', resolve));
    },
    async close() {
      cut();
      if (listener.listening) await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
