/**
 * ClipImage `status` from index outcomes, through the status subresource: read, change, replace
 * guarded by resourceVersion, and read again on a 409 (someone wrote in between). Writes to one
 * ClipImage run in order, so an older outcome never lands after a newer one.
 */
import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { IndexOutcome, Requester } from '../contracts.js';
import { isConflict, isNotFound } from './api-error.js';
import { CLIP_IMAGE_RESOURCE, type ClipImage, type ClipImageCondition, type ClipImageStatus } from './clip-image-api.js';
import type { Health } from './health.js';

const CONFLICT_RETRIES = 5;

export class ClipImageStatusWriter {
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    private readonly custom: CustomObjectsApi,
    private readonly health: Health,
  ) {}

  /** Resolves once written (or given up: logged). */
  write(requester: Requester, outcome: IndexOutcome): Promise<void> {
    const previous = this.chains.get(requester.uid) ?? Promise.resolve();
    const next = previous.then(() => this.writeNow(requester, outcome));
    this.chains.set(requester.uid, next);
    void next.then(() => {
      if (this.chains.get(requester.uid) === next) this.chains.delete(requester.uid);
    });
    return next;
  }

  private async writeNow(requester: Requester, outcome: IndexOutcome): Promise<void> {
    const call = { verb: 'update', resource: 'clipimages/status' };
    try {
      for (let attempt = 0; ; attempt += 1) {
        const current = (await this.custom.getClusterCustomObject({ ...CLIP_IMAGE_RESOURCE, name: requester.name })) as ClipImage;
        // Deleted and created again under the same name: this outcome is not for it.
        if (current.metadata?.uid !== requester.uid) return;
        const body: ClipImage = { ...current, status: nextStatus(current.status, outcome, Number(requester.revision)) };
        try {
          await this.custom.replaceClusterCustomObjectStatus({ ...CLIP_IMAGE_RESOURCE, name: requester.name, body });
          this.health.clear('write clipimages/status');
          return;
        } catch (err) {
          if (!isConflict(err) || attempt >= CONFLICT_RETRIES) throw err;
        }
      }
    } catch (err) {
      if (isNotFound(err)) return;
      this.health.refused('write clipimages/status', call, err);
    }
  }
}

/** The status an outcome leads to; the Ready condition keeps its transition time while its status holds. */
export function nextStatus(current: ClipImageStatus | undefined, outcome: IndexOutcome, generation: number): ClipImageStatus {
  const ready: Omit<ClipImageCondition, 'lastTransitionTime'> =
    outcome.state === 'Indexed'
      ? { type: 'Ready', status: 'True', reason: 'Indexed', message: `indexed for ${outcome.indexes.map((index) => index.platform).join(', ')}` }
      : outcome.state === 'Indexing'
        ? { type: 'Ready', status: 'False', reason: 'Indexing', message: outcome.progress || 'indexing' }
        : { type: 'Ready', status: 'False', reason: outcome.reason, message: outcome.message };
  const previous = current?.conditions?.find((condition) => condition.type === 'Ready');
  const lastTransitionTime = previous && previous.status === ready.status ? previous.lastTransitionTime : new Date().toISOString();
  const others = (current?.conditions ?? []).filter((condition) => condition.type !== 'Ready');
  // While indexing, what was found for this generation so far stays.
  const sameGeneration = current?.observedGeneration === generation;
  const digest = outcome.digest ?? (outcome.state === 'Indexing' && sameGeneration ? current?.digest : undefined);
  return {
    observedGeneration: generation,
    ...(digest && { digest }),
    conditions: [...others, { ...ready, observedGeneration: generation, lastTransitionTime }],
    indexes: outcome.state === 'Indexed' ? outcome.indexes : outcome.state === 'Indexing' && sameGeneration ? (current?.indexes ?? []) : [],
  };
}
