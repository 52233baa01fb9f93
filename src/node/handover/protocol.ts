/**
 * The messages by which FUSE connections change hands on a node (docs/node.md, "Restarts"): JSON
 * objects over unix SOCK_SEQPACKET sockets, a connection's /dev/fuse descriptor beside the message
 * that names it. Two conversations:
 *
 * holder (`clip holder`, keeps a copy of every connection while plugins come and go):
 *   plugin → {op: put, connection} + fd        holder → {op: ok}
 *   plugin → {op: drop, key}                   holder → {op: ok}
 *   plugin → {op: list}                        holder → {op: connection, connection} + fd ... {op: end}
 *
 * handover (a live plugin hands its connections to its successor, under the state directory):
 *   successor → {op: handover, pid}            predecessor stops serving CSI calls, then
 *   predecessor → {op: connection, connection} + fd ... {op: end}
 *   successor → {op: taken}                    predecessor stops reading its connections
 *   predecessor → {op: released}               and keeps the socket open until it exits
 */
import { closeAll, type FdConnection, type FdMessage } from '../../clipcore/index.js';

/** Version of this protocol: a peer speaking another one is refused (its connections are remounted). */
export const PROTOCOL_VERSION = 1;

/** A live FUSE connection of an image mount, as it travels. */
export interface ConnectionInfo {
  /** The image key (`imageKeyOf(digest, platform)`). */
  key: string;
  /** Where the connection is mounted (`<state-dir>/images/<key>`). */
  mountPoint: string;
  /** The INIT request the kernel sent, base64. */
  init: string;
}

/** A connection received, with its descriptor (the receiver's to close). */
export interface ReceivedConnection {
  readonly info: ConnectionInfo;
  readonly fd: number;
}

const MAX_TEXT = 4096;

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TEXT) throw new Error(`${what} must be a string of 1 to ${MAX_TEXT} characters`);
  return value;
}

export function parseConnection(value: unknown): ConnectionInfo {
  if (typeof value !== 'object' || value === null) throw new Error('connection must be an object');
  const record = value as Record<string, unknown>;
  const init = text(record.init, 'connection.init');
  if (!/^[A-Za-z0-9+/]+=*$/.test(init) || Buffer.from(init, 'base64').length > 256) throw new Error('connection.init must be base64 of at most 256 bytes');
  return { key: text(record.key, 'connection.key'), mountPoint: text(record.mountPoint, 'connection.mountPoint'), init };
}

/** Reads `{op: connection} + fd` messages until `{op: end}`; closes every descriptor received when it throws. */
export async function receiveConnections(peer: FdConnection, what: string): Promise<ReceivedConnection[]> {
  const received: ReceivedConnection[] = [];
  try {
    for (;;) {
      const next = await peer.receive();
      if (!next) throw new Error(`${what} closed the connection before the end of the list`);
      if (next.message.op === 'end') return received;
      const fd = expectOneFd(next, what);
      try {
        if (next.message.op !== 'connection') throw new Error(`${what} sent ${String(next.message.op)} instead of a connection`);
        received.push({ info: parseConnection(next.message.connection), fd });
      } catch (err) {
        closeAll([fd]);
        throw err;
      }
    }
  } catch (err) {
    closeAll(received.map((connection) => connection.fd));
    throw err;
  }
}

export function sendConnections(peer: FdConnection, connections: ReadonlyArray<{ info: ConnectionInfo; fd: number }>): void {
  for (const { info, fd } of connections) peer.send({ op: 'connection', connection: info }, [fd]);
  peer.send({ op: 'end' });
}

/** The one descriptor a message must carry; closes any others. */
export function expectOneFd(received: FdMessage, what: string): number {
  const [fd, ...extra] = received.fds;
  closeAll(extra);
  if (fd === undefined) throw new Error(`${what} sent ${String(received.message.op)} without a descriptor`);
  return fd;
}

/** Waits for a message with this `op`; throws on anything else or the end of the connection. */
export async function expectReply(peer: FdConnection, op: string, what: string): Promise<Record<string, unknown>> {
  const reply = await peer.receive();
  if (!reply) throw new Error(`${what} closed the connection`);
  closeAll(reply.fds);
  if (reply.message.op === 'error') throw new Error(`${what}: ${String(reply.message.message).slice(0, 512)}`);
  if (reply.message.op !== op) throw new Error(`${what} answered ${String(reply.message.op).slice(0, 64)} instead of ${op}`);
  return reply.message;
}
