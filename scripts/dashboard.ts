/**
 * The Grafana dashboard of the chart (charts/clip-csi/dashboards/clip-csi.json), written from the
 * panel list below by `scripts/render-deploy.ts`. Every panel has a unit and a description; every
 * query uses the `datasource` variable. Queries use Grafana's `$__rate_interval`, which the tests
 * replace before sending them to a real Prometheus (test/monitoring-live.test.ts).
 */

export interface PanelQuery {
  expr: string;
  legend: string;
}

export interface PanelSpec {
  title: string;
  description: string;
  /** Grafana unit id: percentunit, s, Bps, ops, short, bytes. */
  unit: string;
  queries: PanelQuery[];
}

const RATE = '$__rate_interval';
const quantiles = (metric: string, by: string[] = [], label = ''): PanelQuery[] =>
  [0.5, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (${['le', ...by].join(', ')}) (rate(${metric}_bucket[${RATE}])))`,
    legend: `${by.map((name) => `{{${name}}} `).join('')}p${q * 100}${label}`,
  }));

export const PANELS: PanelSpec[] = [
  {
    title: 'Cache hit rate',
    description: 'Share of span reads served by a cache (memory, disk or shared) rather than fetched from the origin (registry, S3).',
    unit: 'percentunit',
    queries: [{ expr: `sum(rate(clip_span_reads_total{tier!="origin"}[${RATE}])) / sum(rate(clip_span_reads_total[${RATE}]))`, legend: 'all tiers' }],
  },
  {
    title: 'Cache hit rate by tier',
    description: 'Hits among the lookups that reached each cache tier (memory, disk, shared).',
    unit: 'percentunit',
    queries: [
      {
        expr: `sum by (tier) (rate(clip_cache_lookups_total{result="hit"}[${RATE}])) / sum by (tier) (rate(clip_cache_lookups_total[${RATE}]))`,
        legend: '{{tier}}',
      },
    ],
  },
  {
    title: 'First-read latency',
    description: 'Latency of the first read of each file after its image was mounted (p50, p99): what a starting application waits for.',
    unit: 's',
    queries: quantiles('clip_first_read_duration_seconds'),
  },
  {
    title: 'Origin bytes per second',
    description: 'Bytes fetched from each origin (registry, s3, local) because every cache missed.',
    unit: 'Bps',
    queries: [{ expr: `sum by (origin) (rate(clip_origin_fetched_bytes_total[${RATE}]))`, legend: '{{origin}}' }],
  },
  {
    title: 'Span read latency by tier',
    description: 'Latency of span reads by the tier that served them (p50, p99).',
    unit: 's',
    queries: quantiles('clip_span_read_duration_seconds', ['tier']),
  },
  {
    title: 'Span reads by tier',
    description: 'Span reads per second by the tier that served them; origin means every cache missed.',
    unit: 'ops',
    queries: [{ expr: `sum by (tier) (rate(clip_span_reads_total[${RATE}]))`, legend: '{{tier}}' }],
  },
  {
    title: 'Publish latency',
    description: 'NodePublishVolume latency (p50, p99), indexing or downloading the image index included when the image was not mounted yet.',
    unit: 's',
    queries: quantiles('clip_csi_publish_duration_seconds'),
  },
  {
    title: 'Publish calls by result code',
    description: 'NodePublishVolume calls per second by gRPC code: OK, ABORTED while an image is indexed (kubelet retries), errors otherwise.',
    unit: 'ops',
    queries: [{ expr: `sum by (code) (rate(clip_csi_calls_total{method="NodePublishVolume"}[${RATE}]))`, legend: '{{code}}' }],
  },
  {
    title: 'Volumes and images mounted',
    description: 'Volumes published (target paths) and image FUSE mounts (one per image digest and platform), summed over nodes.',
    unit: 'short',
    queries: [
      { expr: 'sum(clip_csi_volumes_published)', legend: 'volumes' },
      { expr: 'sum(clip_csi_image_mounts)', legend: 'image mounts' },
    ],
  },
  {
    title: 'Image indexes by source',
    description: 'Where the index of each new image mount came from: the node-local cache, S3, the controller, or indexed on the node itself.',
    unit: 'ops',
    queries: [{ expr: `sum by (source) (rate(clip_csi_index_source_total[${RATE}]))`, legend: '{{source}}' }],
  },
  {
    title: 'Disk cache fill',
    description: "Each node's disk cache size as a share of its bound (node.cacheMaxBytes).",
    unit: 'percentunit',
    queries: [{ expr: 'max by (instance) (clip_disk_cache_size_bytes / clip_disk_cache_max_bytes)', legend: '{{instance}}' }],
  },
  {
    title: 'Disk cache evictions',
    description: 'Bytes evicted from the disk caches per second, to stay under their bound. High and steady: the cache is too small.',
    unit: 'Bps',
    queries: [{ expr: `sum(rate(clip_disk_cache_evicted_bytes_total[${RATE}]))`, legend: 'evicted' }],
  },
  {
    title: 'Controller queue',
    description: 'Index jobs waiting in the controller queue, and indexes being built now.',
    unit: 'short',
    queries: [
      { expr: 'sum(clip_controller_queue_depth)', legend: 'queued' },
      { expr: 'sum(clip_controller_indexes_in_flight)', legend: 'in flight' },
    ],
  },
  {
    title: 'Controller index jobs by result',
    description: 'Index jobs finished per second, by result.',
    unit: 'ops',
    queries: [{ expr: `sum by (result) (rate(clip_controller_index_jobs_total[${RATE}]))`, legend: '{{result}}' }],
  },
  {
    title: 'Controller index duration',
    description: 'Time to index one image for one platform in the controller (p50, p99).',
    unit: 's',
    queries: quantiles('clip_controller_index_duration_seconds'),
  },
  {
    title: 'Controller registry bytes per second',
    description: 'Bytes the controller reads from registries while indexing.',
    unit: 'Bps',
    queries: [{ expr: `sum(rate(clip_controller_registry_bytes_total[${RATE}]))`, legend: 'registry' }],
  },
  {
    title: 'Controller leader',
    description: 'Replicas that hold the leader Lease: exactly 1 when healthy.',
    unit: 'short',
    queries: [{ expr: 'sum(clip_controller_leader)', legend: 'leaders' }],
  },
];

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

/** The dashboard JSON object. */
export function buildDashboard(): Record<string, unknown> {
  return {
    uid: 'clip-csi',
    title: 'clip-csi',
    description: 'clip-csi: image volumes, read path caches, origins, and the indexing controller.',
    tags: ['clip-csi', 'csi', 'storage'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-3h', to: 'now' },
    timezone: 'browser',
    graphTooltip: 1,
    templating: {
      list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1 }],
    },
    annotations: { list: [] },
    panels: PANELS.map((panel, index) => ({
      id: index + 1,
      type: 'timeseries',
      title: panel.title,
      description: panel.description,
      datasource: DATASOURCE,
      gridPos: { h: 8, w: 12, x: (index % 2) * 12, y: Math.floor(index / 2) * 8 },
      fieldConfig: { defaults: { unit: panel.unit, min: 0, ...(panel.unit === 'percentunit' && { max: 1 }) }, overrides: [] },
      options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'none' } },
      targets: panel.queries.map((query, q) => ({
        refId: String.fromCharCode(65 + q),
        datasource: DATASOURCE,
        expr: query.expr,
        legendFormat: query.legend,
      })),
    })),
  };
}

/** The file's text, as written into the chart. */
export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}
