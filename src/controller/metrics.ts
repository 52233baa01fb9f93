/** Prometheus metrics of the controller (prom-client): every name in one place, served on /metrics. */
import client from 'prom-client';

/** How a job (or the resolution of its image) ended: `indexed`, `exists` (already in S3), or the failure. */
export type JobResult = 'indexed' | 'exists' | 'not_found' | 'unauthorized' | 'not_a_filesystem' | 'unavailable';

export const CONTROLLER_METRICS = {
  jobs: 'clip_controller_index_jobs_total',
  duration: 'clip_controller_index_duration_seconds',
  queueDepth: 'clip_controller_queue_depth',
  inFlight: 'clip_controller_indexes_in_flight',
  registryBytes: 'clip_controller_registry_bytes_total',
  leader: 'clip_controller_leader',
  csiCalls: 'clip_controller_csi_calls_total',
} as const;

const JOB_RESULTS: readonly JobResult[] = ['indexed', 'exists', 'not_found', 'unauthorized', 'not_a_filesystem', 'unavailable'];

export class ControllerMetrics {
  readonly registry: client.Registry;
  private readonly jobs: client.Counter<'result'>;
  private readonly duration: client.Histogram;
  private readonly registryBytes: client.Counter;
  private readonly leader: client.Gauge;
  private readonly calls: client.Counter<'method' | 'code'>;

  constructor(gauges: { queueDepth: () => number; inFlight: () => number }, registry = new client.Registry()) {
    this.registry = registry;
    // process_resident_memory_bytes and friends, as clip_controller_process_*.
    client.collectDefaultMetrics({ register: registry, prefix: 'clip_controller_' });
    this.jobs = new client.Counter({
      name: CONTROLLER_METRICS.jobs,
      help: 'Index jobs (one per image digest and platform) by result: indexed, exists (already in S3), or the failure reason',
      labelNames: ['result'],
      registers: [registry],
    });
    for (const result of JOB_RESULTS) this.jobs.inc({ result }, 0);
    this.duration = new client.Histogram({
      name: CONTROLLER_METRICS.duration,
      help: 'Time to index an image (one platform) and upload its index',
      buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    });
    new client.Gauge({
      name: CONTROLLER_METRICS.queueDepth,
      help: 'Index jobs waiting for a slot (including those backing off)',
      registers: [registry],
      collect() {
        this.set(gauges.queueDepth());
      },
    });
    new client.Gauge({
      name: CONTROLLER_METRICS.inFlight,
      help: 'Index jobs running now (at most --concurrency)',
      registers: [registry],
      collect() {
        this.set(gauges.inFlight());
      },
    });
    this.registryBytes = new client.Counter({
      name: CONTROLLER_METRICS.registryBytes,
      help: 'Compressed layer bytes read from registries while indexing',
      registers: [registry],
    });
    this.leader = new client.Gauge({
      name: CONTROLLER_METRICS.leader,
      help: '1 while this replica is the leader (watches and indexes for Pods and ClipImages), else 0',
      registers: [registry],
    });
    this.leader.set(0);
    this.calls = new client.Counter({
      name: CONTROLLER_METRICS.csiCalls,
      help: 'CSI gRPC calls by method and result code',
      labelNames: ['method', 'code'],
      registers: [registry],
    });
  }

  job(result: JobResult): void {
    this.jobs.inc({ result });
  }

  indexed(seconds: number): void {
    this.duration.observe(seconds);
  }

  registryRead(bytes: number): void {
    if (bytes > 0) this.registryBytes.inc(bytes);
  }

  setLeader(leader: boolean): void {
    this.leader.set(leader ? 1 : 0);
  }

  call(method: string, code: string): void {
    this.calls.inc({ method, code });
  }
}
