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
  private readonly takenOverConnections: client.Counter<'source'>;
  private readonly resends: client.Counter<'result'>;

  constructor(gauges: { volumes: () => number; imageMounts: () => number; holderUp: () => number | undefined }, registry = new client.Registry()) {
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
    this.takenOverConnections = new client.Counter({
      name: 'clip_csi_fuse_connections_taken_over_total',
      help: 'FUSE connections of an earlier plugin process this one serves instead of mounting again, by how they came (handover, holder)',
      labelNames: ['source'],
      registers: [registry],
    });
    for (const source of ['handover', 'holder'] as const) this.takenOverConnections.inc({ source }, 0);
    this.resends = new client.Counter({
      name: 'clip_csi_fuse_resend_total',
      help: 'Requests to the kernel to resend what an earlier process left unanswered (FUSE_NOTIFY_RESEND), by result (done, unsupported)',
      labelNames: ['result'],
      registers: [registry],
    });
    for (const result of ['done', 'unsupported'] as const) this.resends.inc({ result }, 0);
    new client.Gauge({
      name: 'clip_csi_fuse_holder_up',
      help: 'Whether the FUSE connection holder (clip holder) answered the last exchange: 1, or 0 (a crash of the plugin would then break running pods\' volumes); absent without --holder-socket',
      registers: [registry],
      collect() {
        const up = gauges.holderUp();
        if (up !== undefined) this.set(up);
      },
    });
  }

  takenOver(source: 'handover' | 'holder', count: number): void {
    this.takenOverConnections.inc({ source }, count);
  }

  resent(done: boolean): void {
    this.resends.inc({ result: done ? 'done' : 'unsupported' });
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
