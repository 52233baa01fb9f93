import { RegistryClient, type RegistryClientOptions, type RegistrySession } from '../registry/index.js';

/**
 * One RegistryClient per thread (main thread and each layer worker), kept from one use to the next
 * while the options stay the same. A process that indexes image after image from one registry then
 * pays once, not per image and per layer, for the scheme probe (a bare TLS handshake with loopback
 * or insecure registries), the TCP and TLS handshakes and the token. Idle keep-alive sockets never keep
 * a process alive: Node's agent unrefs them while they wait in its pool.
 */
export interface KeptClientLease {
  readonly client: RegistryClient;
  /**
   * Ends this use, once settled. After a failure the client is not kept: what it remembers (a
   * scheme learned before the registry changed, credentials read from Docker's config) may be why.
   */
  release(failed?: boolean): void;
}

interface Kept {
  /** The options as JSON. They hold credentials: this stays in memory and is never logged. */
  readonly key: string;
  readonly client: RegistryClient;
  /** Uses not yet released: a replaced client is closed only once none is left. */
  users: number;
}

let kept: Kept | undefined;

/** This thread's client for `options`; `session` (what another client learned) is taken in. */
export function leaseKeptClient(options: RegistryClientOptions, session?: RegistrySession): KeptClientLease {
  const key = JSON.stringify(options);
  if (kept?.key === key) {
    if (session !== undefined) kept.client.adoptSession(session);
  } else {
    const replaced = kept;
    kept = { key, client: new RegistryClient(session === undefined ? options : { ...options, session }), users: 0 };
    if (replaced !== undefined && replaced.users === 0) replaced.client.close();
  }
  const entry = kept;
  entry.users++;
  let released = false;
  return {
    client: entry.client,
    release(failed = false) {
      if (released) return;
      released = true;
      entry.users--;
      if (failed && kept === entry) kept = undefined;
      if (kept !== entry && entry.users === 0) entry.client.close();
    },
  };
}
