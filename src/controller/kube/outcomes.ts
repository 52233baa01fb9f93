/**
 * Index outcomes → what people see: `Normal Indexed` / `Warning IndexFailed` Events on the object
 * that asked, and for a ClipImage its status.
 */
import { formatBytes } from '../../cli/progress.js';
import type { IndexedPlatform, IndexOutcome, Requester } from '../contracts.js';

export interface OutcomeSinks {
  event(requester: Requester, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  status(requester: Requester, outcome: IndexOutcome): Promise<void>;
}

export async function reportOutcome(sinks: OutcomeSinks, requester: Requester, outcome: IndexOutcome): Promise<void> {
  const writes: Promise<void>[] = [];
  if (requester.kind === 'ClipImage') writes.push(sinks.status(requester, outcome));
  if (outcome.state === 'Indexed') {
    for (const index of outcome.indexes) writes.push(sinks.event(requester, 'Normal', 'Indexed', indexedMessage(outcome.image, outcome.digest, index)));
  } else if (outcome.state === 'Failed') {
    const what = outcome.digest ? `${withoutDigest(outcome.image)}@${outcome.digest}` : outcome.image;
    writes.push(sinks.event(requester, 'Warning', 'IndexFailed', `${outcome.reason}: cannot index ${what}: ${outcome.message}`));
  }
  await Promise.all(writes);
}

/** `indexed registry/app:1@sha256:… linux/amd64: 20,678 files, 2.2 MiB index, 3.1 s`. */
export function indexedMessage(image: string, digest: string, index: IndexedPlatform): string {
  return `indexed ${withoutDigest(image)}@${digest} ${index.platform}: ${index.files.toLocaleString('en-US')} files, ${formatBytes(index.indexBytes)} index, ${index.durationSeconds.toFixed(1)} s`;
}

function withoutDigest(image: string): string {
  const at = image.indexOf('@');
  return at < 0 ? image : image.slice(0, at);
}
