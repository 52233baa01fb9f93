/**
 * The registry credentials of one image mount, in memory only: never written to disk. Each publish
 * that brings credentials (a volume's secret) replaces them. After a plugin restart none are
 * there: a volume whose credentials came from a secret gets them back with kubelet's next
 * NodePublishVolume (the CSIDriver has `requiresRepublish: true`). Until then, every registry
 * request of the image (reads of data not cached, indexing) waits for them a bounded time, then
 * fails: the reader gets EIO, and one log line names the volumes waiting.
 */
import { ClipError, type CredentialsProvider, type RegistryCredentials } from '../clipcore/index.js';

export class ImageCredentials {
  private current: RegistryCredentials | undefined;
  /** Set when a volume of the image had its credentials from a secret and they are not back yet. */
  private expected = false;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly waitMs: number,
    /** Called when a request gave up waiting (logs which volumes wait). */
    private readonly onMissing: () => void,
  ) {}

  get credentials(): RegistryCredentials | undefined {
    return this.current;
  }

  set(credentials: RegistryCredentials): void {
    this.current = credentials;
    this.expected = false;
    for (const wake of [...this.waiters]) wake();
  }

  /** A restored volume had credentials from a secret: requests wait for them instead of going without. */
  expect(): void {
    if (this.current === undefined) this.expected = true;
  }

  /** The credentials, once there; undefined when none are expected (the node's Docker config, or anonymous). */
  async wait(): Promise<RegistryCredentials | undefined> {
    if (this.current !== undefined || !this.expected) return this.current;
    await new Promise<void>((resolvePromise) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolvePromise();
      };
      const timer = setTimeout(done, this.waitMs);
      this.waiters.add(done);
    });
    if (this.current !== undefined || !this.expected) return this.current;
    this.onMissing();
    throw new ClipError(
      'UNAUTHORIZED',
      `no registry credentials yet: this image's volume got them from a secret before the plugin restarted; kubelet's next NodePublishVolume brings them back`,
    );
  }

  /** For the mount's registry client: asked at each request. */
  readonly provider: CredentialsProvider = () => this.wait();
}
