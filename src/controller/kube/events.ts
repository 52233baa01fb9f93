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

interface Recorded {
  event: CoreV1Event;
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
    try {
      const repeated = this.recent.get(key);
      this.recent.delete(key);
      if (repeated && now.getTime() - repeated.at < REPEAT_WINDOW_MS) {
        const event = { ...repeated.event, count: (repeated.event.count ?? 1) + 1, lastTimestamp: now };
        const written = await this.core.replaceNamespacedEvent({ namespace, name: event.metadata.name ?? '', body: event }).catch(() => undefined);
        if (written) {
          this.remember(key, written);
          return;
        }
        // Gone or changed meanwhile: start a new one.
      }
      const body: CoreV1Event = {
        metadata: { name: `${requester.name}.${(now.getTime() * 1000 + Math.floor(Math.random() * 1000)).toString(16)}`, namespace },
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
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: SOURCE_COMPONENT },
        reportingComponent: REPORTING_CONTROLLER,
        reportingInstance: this.identity,
      };
      this.remember(key, await this.core.createNamespacedEvent({ namespace, body }));
      this.health.clear('create events');
    } catch (err) {
      this.health.refused('create events', { verb: 'create', resource: 'events', namespace }, err);
    }
  }

  private remember(key: string, event: CoreV1Event): void {
    this.recent.set(key, { event, at: Date.now() });
    if (this.recent.size > REMEMBERED) this.recent.delete(this.recent.keys().next().value as string);
  }
}
