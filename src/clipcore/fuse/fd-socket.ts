/**
 * Messages with file descriptors between processes (unix SOCK_SEQPACKET, SCM_RIGHTS) through the
 * clip_fdpass addon: how FUSE connections change hands (docs/node.md, "Restarts"). A message is a
 * JSON object of at most 64 KiB with at most 16 descriptors; received descriptors are the
 * receiver's to close.
 */
import { closeSync } from 'node:fs';
import { ClipError } from '../errors.js';
import { loadAddon } from '../native-addon.js';

interface FdPassAddon {
  listen(path: string): number;
  connect(path: string): number;
  send(fd: number, payload: Uint8Array, fds: number[]): void;
  shutdown(fd: number): void;
  accept(fd: number): Promise<number>;
  recv(fd: number): Promise<{ payload: Buffer; fds: number[] } | null>;
}

let addon: FdPassAddon | undefined;
function fdPass(): FdPassAddon {
  addon ??= loadAddon('clip_fdpass') as FdPassAddon;
  return addon;
}

export interface FdMessage {
  readonly message: Record<string, unknown>;
  readonly fds: number[];
}

/** One end of a connection. */
export class FdConnection {
  private closed = false;

  private constructor(private readonly fd: number) {}

  /** Connects to a listener; throws ClipError UNAVAILABLE (with the errno code as `cause.code`) when none answers. */
  static connect(path: string): FdConnection {
    try {
      return new FdConnection(fdPass().connect(path));
    } catch (err) {
      throw new ClipError('UNAVAILABLE', `nothing answers at ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** @internal */
  static of(fd: number): FdConnection {
    return new FdConnection(fd);
  }

  send(message: Record<string, unknown>, fds: readonly number[] = []): void {
    if (this.closed) throw new ClipError('UNAVAILABLE', 'the connection is closed');
    fdPass().send(this.fd, Buffer.from(JSON.stringify(message)), [...fds]);
  }

  /** The next message, or null when the peer closed the connection (or this end was closed). */
  async receive(): Promise<FdMessage | null> {
    if (this.closed) return null;
    const raw = await fdPass().recv(this.fd);
    if (!raw) return null;
    let message: unknown;
    try {
      message = JSON.parse(raw.payload.toString('utf8'));
    } catch {
      message = undefined;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      closeAll(raw.fds);
      throw new ClipError('INVALID_ARGUMENT', 'a message that is not a JSON object was received');
    }
    return { message: message as Record<string, unknown>, fds: raw.fds };
  }

  /** Ends the connection; a pending receive() resolves with null. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fdPass().shutdown(this.fd);
    // The descriptor is closed after the receiving thread let go of it (it returns at once after shutdown).
    setImmediate(() => closeSync(this.fd));
  }
}

/** A listening socket at a path it owns (made with mode 0600, removed by close()). */
export class FdListener {
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  /** Listens at `path`, which must not exist. */
  static listen(path: string): FdListener {
    try {
      return new FdListener(path, fdPass().listen(path));
    } catch (err) {
      throw new ClipError('UNAVAILABLE', `cannot listen at ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The next connection; null once the listener is closed. */
  async accept(): Promise<FdConnection | null> {
    if (this.closed) return null;
    try {
      return FdConnection.of(await fdPass().accept(this.fd));
    } catch (err) {
      if (this.closed) return null;
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fdPass().shutdown(this.fd);
    setImmediate(() => closeSync(this.fd));
  }
}

export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}
