/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
 * holder renews every RETRY_MS; another replica takes the Lease over once it has seen no change to
 * it for the lease duration (measured on its own clock, so clock skew between nodes does not
 * matter); every write is guarded by the resourceVersion read, so of two candidates one gets a 409
 * and loses. A leader that cannot renew within RENEW_DEADLINE_MS steps down before the Lease can
 * expire for the others. On stop the Lease is released for the next replica to take at once.
 */
import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../../csi/log.js';
import { describeApiError, isConflict, isNotFound } from './api-error.js';
import type { Health } from './health.js';

export const LEASE_NAME = 'clip-csi-controller';
export const LEASE_DURATION_SECONDS = 15;
const RETRY_MS = 2_000;
const RENEW_DEADLINE_MS = 10_000;

export interface LeaderElectorOptions {
  coordination: CoordinationV1Api;
  namespace: string;
  identity: string;
  log: Logger;
  health: Health;
  onChange(leader: boolean): void;
}

export class LeaderElector {
  private leading = false;
  private answered = false;
  private stopped = false;
  private observedVersion: string | undefined;
  private observedAt = 0;
  private lastRenew = 0;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private lease: V1Lease | undefined;

  constructor(private readonly options: LeaderElectorOptions) {
    options.health.set('lease', `lease ${options.namespace}/${LEASE_NAME} not read yet`);
  }

  get leader(): boolean {
    return this.leading;
  }

  /** Whether the API server has answered a Lease call yet. */
  get apiAnswered(): boolean {
    return this.answered;
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    if (this.leading) await this.release();
    this.options.health.clear('lease');
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      await this.tryAcquireOrRenew();
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, RETRY_MS);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { coordination, namespace, identity } = this.options;
    const now = performance.now();
    let verb = 'get';
    try {
      let lease: V1Lease | undefined;
      try {
        lease = await coordination.readNamespacedLease({ name: LEASE_NAME, namespace });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      this.answered = true;
      this.options.health.clear('lease');
      if (!lease) {
        verb = 'create';
        this.lease = await coordination.createNamespacedLease({ namespace, body: this.held(undefined) });
        this.became(true);
        return;
      }
      this.lease = lease;
      if (lease.metadata?.resourceVersion !== this.observedVersion) {
        this.observedVersion = lease.metadata?.resourceVersion;
        this.observedAt = now;
      }
      const holder = lease.spec?.holderIdentity;
      const expired = now - this.observedAt > (lease.spec?.leaseDurationSeconds ?? LEASE_DURATION_SECONDS) * 1000;
      if (holder !== identity && holder && !expired) {
        this.became(false);
        return;
      }
      verb = 'update';
      this.lease = await coordination.replaceNamespacedLease({ name: LEASE_NAME, namespace, body: this.held(lease) });
      this.observedVersion = this.lease.metadata?.resourceVersion;
      this.observedAt = now;
      this.became(true);
    } catch (err) {
      if (isConflict(err)) {
        // Another replica wrote first: read again on the next round.
        this.options.health.clear('lease');
      } else {
        this.options.health.failed('lease', { verb, resource: 'leases', namespace }, err);
      }
      if (this.leading && (isConflict(err) || now - this.lastRenew > RENEW_DEADLINE_MS)) {
        this.options.log('warn', 'leadership lost', { reason: describeApiError(err) });
        this.became(false);
      }
    }
  }

  /** The Lease as held by this replica: renewed, or taken over from `current`. */
  private held(current: V1Lease | undefined): V1Lease {
    const now = new V1MicroTime();
    const spec = current?.spec;
    const renewing = spec?.holderIdentity === this.options.identity;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...current?.metadata, name: LEASE_NAME, namespace: this.options.namespace },
      spec: {
        holderIdentity: this.options.identity,
        leaseDurationSeconds: LEASE_DURATION_SECONDS,
        acquireTime: renewing && spec?.acquireTime ? spec.acquireTime : now,
        renewTime: now,
        leaseTransitions: (spec?.leaseTransitions ?? 0) + (current && !renewing ? 1 : 0),
      },
    };
  }

  private became(leader: boolean): void {
    if (leader) this.lastRenew = performance.now();
    if (leader === this.leading) return;
    this.leading = leader;
    this.options.log('info', leader ? 'became leader' : 'not the leader', { lease: `${this.options.namespace}/${LEASE_NAME}`, identity: this.options.identity });
    this.options.onChange(leader);
  }

  /** Hands the Lease over: no holder, so the next replica takes it on its next try. */
  private async release(): Promise<void> {
    const lease = this.lease;
    this.became(false);
    if (!lease?.spec) return;
    try {
      const now = new V1MicroTime();
      await this.options.coordination.replaceNamespacedLease({
        name: LEASE_NAME,
        namespace: this.options.namespace,
        body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now } },
      });
    } catch (err) {
      this.options.log('warn', 'lease not released', { error: describeApiError(err) });
    }
  }
}
