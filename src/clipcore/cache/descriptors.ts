/*
 * Promise wrappers over the callback API on raw file descriptors, for the disk cache's read path:
 * one thread-pool round trip per call and fewer allocations than fs/promises' FileHandle.
 */
import { close, fstat, open, read, type Stats } from 'node:fs';

export function openForReading(path: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** Reads until `buffer` is full or the file ends; resolves to the bytes read. */
export function preadFully(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let filled = 0;
    const next = (): void => {
      read(fd, buffer, filled, buffer.length - filled, position + filled, (err, bytesRead) => {
        if (err) return reject(err);
        filled += bytesRead;
        if (bytesRead === 0 || filled === buffer.length) resolve(filled);
        else next();
      });
    };
    if (buffer.length === 0) resolve(0);
    else next();
  });
}

export function fstatDescriptor(fd: number): Promise<Stats> {
  return new Promise((resolve, reject) => fstat(fd, (err, stats) => (err ? reject(err) : resolve(stats))));
}

/**
 * Closes in the next turn of the event loop, ignoring errors: handing a call to the thread pool
 * costs the calling thread 5–30 µs, which the answer to a read should not wait for. Resolves once
 * closed.
 */
export function closeSoon(fd: number): Promise<void> {
  return new Promise((resolve) => setImmediate(() => close(fd, () => resolve())));
}
