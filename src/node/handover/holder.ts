/**
 * `clip holder`: a small process that keeps a copy of every live FUSE connection of the node
 * plugin (its /dev/fuse descriptors), so that the connections, and with them the pods' mounts,
 * outlive a crash or restart of the plugin: the next plugin process takes them back
 * (docs/node.md, "Restarts"). It runs beside the plugin (in the chart, a second container of the
 * DaemonSet pod that almost never changes) and holds descriptors only in memory: killed, it drops
 * them, and the plugin puts them again once a holder answers.
 */
import { rm, stat } from 'node:fs/promises';
import { closeAll, describeError, FdListener, type FdConnection } from '../../clipcore/index.js';
import type { Logger } from '../../csi/log.js';
import { expectOneFd, parseConnection, PROTOCOL_VERSION, sendConnections, type ConnectionInfo } from './protocol.js';

/** Descriptors held at most: one per image mount of the node. */
const MAX_HELD = 4096;

export interface Holder {
  readonly socketPath: string;
  /** Connections held (tests, logs). */
  readonly size: number;
  close(): Promise<void>;
}

export async function startHolder(socketPath: string, log: Logger): Promise<Holder> {
  const held = new Map<string, { info: ConnectionInfo; fd: number }>();
  // A holder of an older pod may still answer at this path (a DaemonSet rolling update with
  // maxSurge): the new one takes the path; the plugin then puts its connections here.
  await rm(socketPath, { force: true });
  const listener = FdListener.listen(socketPath);
  const ownInode = (await stat(socketPath)).ino;
  const peers = new Set<FdConnection>();

  const serve = async (peer: FdConnection): Promise<void> => {
    for (;;) {
      const received = await peer.receive();
      if (!received) return;
      const { message } = received;
      try {
        if (message.version !== PROTOCOL_VERSION) throw new Error(`protocol version ${String(message.version)} is not ${PROTOCOL_VERSION}`);
        if (message.op === 'put') {
          const fd = expectOneFd(received, 'the plugin');
          let info: ConnectionInfo;
          try {
            info = parseConnection(message.connection);
            if (!held.has(info.key) && held.size >= MAX_HELD) throw new Error(`${MAX_HELD} connections are held already`);
          } catch (err) {
            closeAll([fd]);
            throw err;
          }
          const previous = held.get(info.key);
          if (previous) closeAll([previous.fd]);
          held.set(info.key, { info, fd });
          log('info', 'holding a FUSE connection', { image_key: info.key, mount_point: info.mountPoint, held: held.size });
          peer.send({ op: 'ok' });
        } else if (message.op === 'drop') {
          closeAll(received.fds);
          const key = typeof message.key === 'string' ? message.key : '';
          const previous = held.get(key);
          if (previous) {
            closeAll([previous.fd]);
            held.delete(key);
            log('info', 'dropped a FUSE connection', { image_key: key, held: held.size });
          }
          peer.send({ op: 'ok' });
        } else if (message.op === 'list') {
          closeAll(received.fds);
          sendConnections(peer, [...held.values()]);
        } else {
          throw new Error(`unknown op ${String(message.op).slice(0, 64)}`);
        }
      } catch (err) {
        closeAll(received.fds);
        peer.send({ op: 'error', message: describeError(err) });
      }
    }
  };

  const accepting = (async () => {
    for (;;) {
      const peer = await listener.accept().catch((err: unknown) => {
        log('error', 'holder cannot accept a connection', { error: describeError(err) });
        return null;
      });
      if (!peer) return;
      peers.add(peer);
      void serve(peer)
        .catch((err: unknown) => log('warn', 'holder conversation failed', { error: describeError(err) }))
        .finally(() => {
          peer.close();
          peers.delete(peer);
        });
    }
  })();
  log('info', 'holder started', { socket: socketPath });

  return {
    socketPath,
    get size() {
      return held.size;
    },
    async close() {
      listener.close();
      for (const peer of peers) peer.close();
      await accepting;
      closeAll([...held.values()].map((entry) => entry.fd));
      held.clear();
      // Only our own socket: a newer holder may have taken the path.
      if ((await stat(socketPath).catch(() => undefined))?.ino === ownInode) await rm(socketPath, { force: true });
    },
  };
}
