/**
 * A TCP forwarder in front of a server that counts connections and, among them, those that open
 * with a TLS handshake record (first byte 0x16): how a test sees, on the wire, whether a client
 * tried HTTPS before plain HTTP. Bytes pass through untouched.
 */
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

export interface TcpTap {
  /** `127.0.0.1:PORT` */
  host: string;
  readonly connections: number;
  readonly tlsHandshakes: number;
  close(): Promise<void>;
}

const TLS_HANDSHAKE_RECORD = 0x16;

export async function startTcpTap(target: string): Promise<TcpTap> {
  const { hostname, port } = new URL(`tcp://${target}`);
  const open = new Set<Socket>();
  let connections = 0;
  let tlsHandshakes = 0;
  const server = createServer((client) => {
    connections++;
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    }
    client.once('data', (first: Buffer) => {
      if (first[0] === TLS_HANDSHAKE_RECORD) tlsHandshakes++;
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    get connections() {
      return connections;
    },
    get tlsHandshakes() {
      return tlsHandshakes;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
