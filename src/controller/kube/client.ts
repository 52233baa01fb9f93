/**
 * The connection to the API server: a kubeconfig file when one is named (--kubeconfig, else
 * $KUBECONFIG), else the pod's service account (in-cluster).
 */
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { ClipError } from '../../clipcore/errors.js';

export interface KubeClients {
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  watch: Watch;
  /** The namespace of the service account (in-cluster) or of the kubeconfig's context. */
  namespace: string | undefined;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export function connect(kubeconfig: string | undefined): KubeClients {
  const config = new KubeConfig();
  let namespace: string | undefined;
  try {
    if (kubeconfig) config.loadFromFile(kubeconfig);
    else if (process.env['KUBECONFIG']) config.loadFromDefault();
    else {
      if (!process.env['KUBERNETES_SERVICE_HOST']) {
        throw new Error('not in a cluster (KUBERNETES_SERVICE_HOST is not set): pass --kubeconfig or set $KUBECONFIG');
      }
      config.loadFromCluster();
      namespace = readNamespace();
    }
  } catch (err) {
    throw new ClipError('INVALID_ARGUMENT', `cannot load the Kubernetes configuration: ${(err as Error).message}`, { cause: err });
  }
  if (!config.getCurrentCluster()) throw new ClipError('INVALID_ARGUMENT', 'the Kubernetes configuration names no cluster');
  namespace ??= config.getContextObject(config.getCurrentContext())?.namespace;
  return {
    core: config.makeApiClient(CoreV1Api),
    custom: config.makeApiClient(CustomObjectsApi),
    coordination: config.makeApiClient(CoordinationV1Api),
    watch: new Watch(config),
    namespace,
  };
}

function readNamespace(): string | undefined {
  try {
    return readFileSync(`${SERVICE_ACCOUNT_DIR}/namespace`, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
