/**
 * Rendering the chart with the real Helm binary and checking what comes out: every object parsed
 * and validated against the Kubernetes OpenAPI schemas (kubernetes-models; prometheus-operator's
 * models for its custom resources).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CHART_DIR, renderChart } from '../../scripts/helm.js';
import type { PolicyRule } from '../harness/kube-apiserver/server.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The CI values files, one per feature (charts/clip-csi/ci/). */
export const FEATURE_VALUES = ['s3-secret', 's3-irsa', 'controller-off', 'monitoring', 'registry-ca'] as const;
export type Feature = (typeof FEATURE_VALUES)[number];
export const valuesFile = (feature: Feature): string => join(CHART_DIR, 'ci', `${feature}-values.yaml`);

/** Parses a multi-document YAML stream; a document that does not parse fails loudly. */
export function parseObjects(text: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(text, { uniqueKeys: true })) {
    if (doc.errors.length > 0) throw new Error(`YAML error: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as KubeObject | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

export async function render(valuesFiles: readonly string[] = [], extra: readonly string[] = []): Promise<KubeObject[]> {
  return parseObjects(await renderChart(valuesFiles, extra));
}

export async function readObjects(path: string): Promise<KubeObject[]> {
  return parseObjects(await readFile(path, 'utf8'));
}

/** The one object of this kind and name (fails when absent). */
export function find<T = KubeObject>(objects: readonly KubeObject[], kind: string, name?: string): T & KubeObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as T & KubeObject;
}

export const kinds = (objects: readonly KubeObject[]): string[] => objects.map((o) => o.kind).sort();

/** The module of the kubernetes-models class for an apiVersion and kind. */
function modelModule(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  return `kubernetes-models/${group ? `${group}/` : ''}${version}/${kind}`;
}

interface Model {
  validate(): void;
}

/** Validates one object against its OpenAPI schema; throws with the object's name and the schema's complaint. */
export async function validateObject(object: KubeObject): Promise<void> {
  const module = (await import(modelModule(object.apiVersion, object.kind))) as Record<string, new (data: unknown) => Model>;
  const Class = module[object.kind];
  if (!Class) throw new Error(`no model for ${object.apiVersion} ${object.kind}`);
  try {
    new Class(object).validate();
  } catch (err) {
    throw new Error(`${object.kind} ${object.metadata.name} is not valid: ${(err as Error).message}`);
  }
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } } }>;
  volumeMounts?: Array<{ name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }>;
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[] } };
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
}

export interface PodSpec {
  containers: Container[];
  volumes?: Array<{ name: string; hostPath?: { path: string; type?: string }; configMap?: { name: string }; secret?: { secretName: string } }>;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  priorityClassName?: string;
  securityContext?: Record<string, unknown>;
  tolerations?: Array<Record<string, string>>;
  terminationGracePeriodSeconds?: number;
}

export interface Workload {
  spec: { replicas?: number; template: { spec: PodSpec }; updateStrategy?: { type: string } };
}

export function container(workload: Workload, name: string): Container {
  const found = workload.spec.template.spec.containers.find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

/** The `--flag` names of a container's args (values after `=` dropped, the subcommand skipped). */
export function flagNames(args: readonly string[]): string[] {
  return args.filter((arg) => arg.startsWith('--')).map((arg) => arg.split('=')[0] as string);
}

/** The value of `--flag=value` in args (undefined when absent; '' for a bare flag). */
export function flagValue(args: readonly string[], flag: string): string | undefined {
  for (const arg of args) {
    if (arg === flag) return '';
    if (arg.startsWith(`${flag}=`)) return arg.slice(flag.length + 1);
  }
  return undefined;
}

interface Binding extends KubeObject {
  roleRef: { kind: string; name: string };
  subjects: Array<{ kind: string; name: string; namespace: string }>;
}

/**
 * The rules the chart binds to the controller's ServiceAccount (`serviceAccount` in `namespace`) for
 * `clip controller` (not for csi-provisioner): what the test API server should grant it.
 */
export function controllerRules(objects: readonly KubeObject[], serviceAccount: string, namespace: string): PolicyRule[] {
  const rules: PolicyRule[] = [];
  for (const binding of objects.filter((o): o is Binding => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
    if (!binding.subjects.some((s) => s.kind === 'ServiceAccount' && s.name === serviceAccount && s.namespace === namespace)) continue;
    if (binding.roleRef.name.includes('provisioner')) continue;
    const role = find(objects, binding.roleRef.kind, binding.roleRef.name);
    for (const rule of role['rules'] as PolicyRule[]) {
      rules.push(binding.kind === 'RoleBinding' ? { ...rule, namespaces: [binding.metadata.namespace ?? ''] } : rule);
    }
  }
  return rules;
}
