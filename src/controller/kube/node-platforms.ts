/** The os/arch pairs of the cluster's Nodes (labels `kubernetes.io/os`, `kubernetes.io/arch`). */
import type { V1Node } from '@kubernetes/client-node';
import type { WatchSink } from './list-watch.js';

export class NodePlatforms implements WatchSink<V1Node> {
  private readonly byNode = new Map<string, string>();
  private seen: Set<string> | undefined;

  upsert(node: V1Node): void {
    const name = node.metadata?.name;
    if (!name) return;
    this.seen?.add(name);
    const labels = node.metadata?.labels ?? {};
    const os = labels['kubernetes.io/os'];
    const arch = labels['kubernetes.io/arch'];
    if (os && arch) this.byNode.set(name, `${os}/${arch}`);
    else this.byNode.delete(name);
  }

  remove(node: V1Node): void {
    this.byNode.delete(node.metadata?.name ?? '');
  }

  relistBegin(): void {
    this.seen = new Set();
  }

  relistEnd(): void {
    for (const name of [...this.byNode.keys()]) if (!this.seen?.has(name)) this.byNode.delete(name);
    this.seen = undefined;
  }

  /** Sorted, distinct. */
  platforms(): string[] {
    return [...new Set(this.byNode.values())].sort();
  }
}
