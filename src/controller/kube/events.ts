/**
 * Events on the objects that asked for an index, written as kube's own recorder does: core/v1
 * Events, and a repeat of one (same object, type, reason and message) within ten minutes counts up
 * the existing Event instead of adding another, so a failing image does not flood the namespace.
 * A few writes at a time; best effort: a failure is logged, never thrown.
 */
import type { CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import type { Requester } from '../contracts.js';
import { CLIP_IMAGE_API_VERSION } from './clip-image-api.js';
import type { Health } from './health.js';
import { Limiter } from './limiter.js';

export const REPORTING_CONTROLLER = 'clip.csi.dev/controller';
const SOURCE_COMPONENT = 'clip-csi-controller';
const REPEAT_WINDOW_MS = 10 * 60_000;
const REMEMBERED = 4096;
/** Where kube puts the events of cluster-scoped objects. */
const CLUSTER_EVENT_NAMESPACE = 'default';
const MAX_MESSAGE = 1024;
/** Writes at once: a new leader reporting on 50,000 pending pods queues them, not 50,000 requests. */
const CONCURRENT_WRITES = 4;

const API_VERSIONS: Record<Requester['kind'], string> = {
  Pod: 'v1',
  PersistentVolumeClaim: 'v1',
  ClipImage: CLIP_IMAGE_API_VERSION,
};

/** What is kept of a recent Event: enough to count it up, not the object. */
interface Recorded {
  name: string;
  count: number;
  first: Date;
  at: number;
}

export class EventRecorder {
  /** Insertion-ordered: the oldest are forgotten first. */
  private readonly recent = new Map<string, Recorded>();
  private readonly limiter = new Limiter(CONCURRENT_WRITES);

  constructor(
    private readonly core: CoreV1Api,
    private readonly identity: string,
    private readonly health: Health,
  ) {}

  record(requester: Requester, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    return this.limiter.run(() => this.write(requester, type, reason, message));
  }

  private async write(requester: Requester, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
    const key = `${requester.uid}\u0000${type}\u0000${reason}\u0000${text}`;
    const namespace = requester.namespace ?? CLUSTER_EVENT_NAMESPACE;
    const now = new Date();
    const event = (recorded: Recorded): CoreV1Event => ({
      metadata: { name: recorded.name, namespace },
      involvedObject: {
        apiVersion: API_VERSIONS[requester.kind],
        kind: requester.kind,
        name: requester.name,
        uid: requester.uid,
        ...(requester.namespace && { namespace: requester.namespace }),
      },
      type,
      reason,
      message: text,
      count: recorded.count,
      firstTimestamp: recorded.first,
      lastTimestamp: now,
      source: { component: SOURCE_COMPONENT },
      reportingComponent: REPORTING_CONTROLLER,
      reportingInstance: this.identity,
    });
    try {
      const repeated = this.recent.get(key);
      this.recent.delete(key);
      if (repeated && now.getTime() - repeated.at < REPEAT_WINDOW_MS) {
        const counted = { ...repeated, count: repeated.count + 1, at: now.getTime() };
        // Events take unconditional updates (no resourceVersion), as kube's recorder relies on.
        const written = await this.core.replaceNamespacedEvent({ namespace, name: counted.name, body: event(counted) }).then(
          () => true,
          () => false,
        );
        if (written) {
          this.remember(key, counted);
          return;
        }
        // Gone meanwhile: start a new one.
      }
      const fresh: Recorded = { name: `${requester.name}.${(now.getTime() * 1000 + Math.floor(Math.random() * 1000)).toString(16)}`, count: 1, first: now, at: now.getTime() };
      await this.core.createNamespacedEvent({ namespace, body: event(fresh) });
      this.remember(key, fresh);
      this.health.clear('create events');
    } catch (err) {
      this.health.refused('create events', { verb: 'create', resource: 'events', namespace }, err);
    }
  }

  private remember(key: string, recorded: Recorded): void {
    this.recent.set(key, recorded);
    if (this.recent.size > REMEMBERED) this.recent.delete(this.recent.keys().next().value as string);
  }
}
