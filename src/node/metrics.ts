/** Prometheus metrics of the node plugin (prom-client), served on /metrics. */
import client from 'prom-client';

export type IndexSource = 'local-cache' | 's3' | 'controller' | 'indexed';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class NodeMetrics {
  readonly registry: client.Registry;
  private readonly calls: client.Counter<'method' | 'code'>;
  private readonly publishSeconds: client.Histogram<'code'>;
  private readonly unpublishSeconds: client.Histogram<'code'>;
  private readonly indexSources: client.Counter<'source'>;
  private readonly indexSeconds: client.Histogram;

  constructor(gauges: { volumes: () => number; imageMounts: () => number }, registry = new client.Registry()) {
    this.registry = registry;
    client.collectDefaultMetrics({ register: registry, prefix: 'clip_node_' });
    this.calls = new client.Counter({
      name: 'clip_csi_calls_total',
      help: 'CSI gRPC calls by method and result code',
      labelNames: ['method', 'code'],
      registers: [registry],
    });
    this.publishSeconds = new client.Histogram({
      name: 'clip_csi_publish_duration_seconds',
      help: 'NodePublishVolume latency by result code',
      labelNames: ['code'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.unpublishSeconds = new client.Histogram({
      name: 'clip_csi_unpublish_duration_seconds',
      help: 'NodeUnpublishVolume latency by result code',
      labelNames: ['code'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.indexSources = new client.Counter({
      name: 'clip_csi_index_source_total',
      help: 'Image indexes obtained for a mount, by where they came from (local-cache, s3, controller, indexed)',
      labelNames: ['source'],
      registers: [registry],
    });
    for (const source of ['local-cache', 's3', 'controller', 'indexed'] as const) this.indexSources.inc({ source }, 0);
    this.indexSeconds = new client.Histogram({
      name: 'clip_csi_index_duration_seconds',
      help: 'Time to index an image on this node',
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    });
    new client.Gauge({
      name: 'clip_csi_volumes_published',
      help: 'Volume publications (target paths) currently served',
      registers: [registry],
      collect() {
        this.set(gauges.volumes());
      },
    });
    new client.Gauge({
      name: 'clip_csi_image_mounts',
      help: 'Image FUSE mounts currently up (one per image digest and platform)',
      registers: [registry],
      collect() {
        this.set(gauges.imageMounts());
      },
    });
  }

  call(method: string, code: string, seconds: number): void {
    this.calls.inc({ method, code });
    if (method === 'NodePublishVolume') this.publishSeconds.observe({ code }, seconds);
    if (method === 'NodeUnpublishVolume') this.unpublishSeconds.observe({ code }, seconds);
  }

  indexObtained(source: IndexSource): void {
    this.indexSources.inc({ source });
  }

  indexed(seconds: number): void {
    this.indexSeconds.observe(seconds);
  }
}
