/**
 * A live plugin hands its FUSE connections to its successor (docs/node.md, "Restarts"): a restart
 * in place where the new process starts first, or a DaemonSet rolling update with maxSurge, where
 * the old and the new pod run side by side for a moment. The socket is `<state-dir>/handover.sock`;
 * the conversation is in protocol.ts.
 */
import { rm } from 'node:fs/promises';
import { describeError, FdConnection, FdListener } from '../../clipcore/index.js';
import type { Logger } from '../../csi/log.js';
import { expectReply, PROTOCOL_VERSION, receiveConnections, sendConnections, type ConnectionInfo, type ReceivedConnection } from './protocol.js';

/** What the predecessor's side does at each step. */
export interface HandoverSource {
  /** A successor asks: stop serving CSI calls, then list the live connections. */
  prepare(): Promise<Array<{ info: ConnectionInfo; fd: number }>>;
  /** The successor serves them now: stop reading them. */
  release(): void;
  /** The handover failed after prepare(): this process must not go on as if nothing happened. */
  abort(error: unknown): void;
}

/** The predecessor, as its successor sees it during and after the handover. */
export interface Predecessor {
  readonly connections: ReceivedConnection[];
  /** Says the connections are served here, and waits until the predecessor stopped reading them. */
  confirm(): Promise<void>;
  /** Resolves when the predecessor process is gone (its end of the socket closed). */
  readonly exited: Promise<void>;
  /** Stops waiting for the predecessor to exit. */
  close(): void;
}

/**
 * Asks a live predecessor for its connections. Undefined when none answers at `socketPath` (no
 * predecessor, a dead one, or a version without handover).
 */
export async function takeOver(socketPath: string): Promise<Predecessor | undefined> {
  let peer: FdConnection;
  try {
    peer = FdConnection.connect(socketPath);
  } catch {
    return undefined;
  }
  try {
    peer.send({ op: 'handover', version: PROTOCOL_VERSION, pid: process.pid });
    const connections = await receiveConnections(peer, 'the previous plugin process');
    let exited: Promise<void> | undefined;
    return {
      connections,
      async confirm() {
        peer.send({ op: 'taken', version: PROTOCOL_VERSION });
        await expectReply(peer, 'released', 'the previous plugin process');
      },
      get exited() {
        exited ??= (async () => {
          while (await peer.receive().catch(() => null)) {
            // nothing more is said; the end of the stream is the news
          }
        })();
        return exited;
      },
      close: () => peer.close(),
    };
  } catch (err) {
    peer.close();
    throw err;
  }
}

/**
 * Listens for a successor at `socketPath` (taking the path over from a dead process) and hands
 * over once. Returns a function that stops listening.
 */
export async function serveHandover(socketPath: string, source: HandoverSource, log: Logger): Promise<() => void> {
  await rm(socketPath, { force: true });
  const listener = FdListener.listen(socketPath);
  void (async () => {
    for (;;) {
      const peer = await listener.accept().catch(() => null);
      if (!peer) return;
      const request = await peer.receive().catch(() => null);
      if (request?.message.op !== 'handover' || request.message.version !== PROTOCOL_VERSION) {
        peer.send({ op: 'error', message: `expected a handover request of protocol version ${PROTOCOL_VERSION}` });
        peer.close();
        continue;
      }
      const successor = typeof request.message.pid === 'number' ? request.message.pid : undefined;
      log('info', 'a successor asks for the FUSE connections; handing them over', { successor_pid: successor });
      let prepared = false;
      try {
        const connections = await source.prepare();
        prepared = true;
        sendConnections(peer, connections);
        await expectReply(peer, 'taken', 'the successor');
        source.release();
        peer.send({ op: 'released' });
        log('info', 'handed over every FUSE connection; this process serves nothing more', { successor_pid: successor, connections: connections.length });
        // The socket stays open until this process exits: the successor learns of the exit by it.
        listener.close();
        return;
      } catch (err) {
        log('error', 'the handover failed', { successor_pid: successor, error: describeError(err) });
        peer.close();
        if (prepared) {
          listener.close();
          source.abort(err);
          return;
        }
      }
    }
  })();
  return () => listener.close();
}
