/**
 * The node plugin's side of the holder (`clip holder`, holder.ts): every image mount's connection
 * is put there when the mount is served and dropped when it is unmounted. A holder that does not
 * answer costs only the crash safety: the plugin logs it once, and puts every connection again
 * once a holder answers (a holder container restarted).
 */
import { describeError, FdConnection } from '../../clipcore/index.js';
import type { Logger } from '../../csi/log.js';
import { expectReply, PROTOCOL_VERSION, receiveConnections, type ConnectionInfo, type ReceivedConnection } from './protocol.js';

/** How often a plugin whose holder stopped answering tries again. */
const RETRY_MS = 5_000;

export class HolderClient {
  private healthy: boolean | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * @param current every connection the plugin serves, put again after the holder came back.
   */
  constructor(
    readonly socketPath: string,
    private readonly log: Logger,
    private readonly current: () => Array<{ info: ConnectionInfo; fd: number }>,
  ) {}

  /** Whether the last exchange with the holder worked (undefined before the first). */
  get up(): boolean | undefined {
    return this.healthy;
  }

  /** The connections the holder keeps (the previous plugin process's); [] when no holder answers. */
  async list(): Promise<ReceivedConnection[]> {
    return this.serialized(async () => {
      const peer = this.open();
      if (!peer) return [];
      try {
        peer.send({ op: 'list', version: PROTOCOL_VERSION });
        return await receiveConnections(peer, 'the holder');
      } catch (err) {
        this.failed(err);
        return [];
      } finally {
        peer.close();
      }
    });
  }

  put(info: ConnectionInfo, fd: number): Promise<void> {
    return this.exchange({ op: 'put', connection: info }, [fd]);
  }

  drop(key: string): Promise<void> {
    return this.exchange({ op: 'drop', key }, []);
  }

  close(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private exchange(message: Record<string, unknown>, fds: number[]): Promise<void> {
    return this.serialized(async () => {
      const peer = this.open();
      if (!peer) return;
      try {
        peer.send({ ...message, version: PROTOCOL_VERSION }, fds);
        await expectReply(peer, 'ok', 'the holder');
      } catch (err) {
        this.failed(err);
      } finally {
        peer.close();
      }
    });
  }

  /** One conversation at a time, in order: a drop never overtakes the put before it. */
  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private open(): FdConnection | undefined {
    try {
      const peer = FdConnection.connect(this.socketPath);
      if (this.healthy === false) {
        this.healthy = true;
        this.log('info', 'the FUSE connection holder answers again; putting every connection there', { socket: this.socketPath });
        void this.resync();
      }
      this.healthy = true;
      return peer;
    } catch (err) {
      this.failed(err);
      return undefined;
    }
  }

  private async resync(): Promise<void> {
    for (const { info, fd } of this.current()) await this.put(info, fd);
  }

  private failed(err: unknown): void {
    if (this.healthy !== false) {
      this.log('warn', 'no FUSE connection holder answers: a crash of this plugin would break the volumes of running pods until they are restored', {
        socket: this.socketPath,
        error: describeError(err),
      });
    }
    this.healthy = false;
    if (!this.retryTimer) {
      this.retryTimer = setInterval(() => {
        if (this.healthy !== false) return;
        void this.serialized(async () => {
          const peer = this.open();
          peer?.close();
        });
      }, RETRY_MS).unref();
    }
  }
}

