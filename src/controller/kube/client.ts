/**
 * The connection to the API server: a kubeconfig file when one is named (--kubeconfig, else
 * $KUBECONFIG), else the pod's service account (in-cluster).
 */
import {
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  KubeConfig,
  ServerConfiguration,
  Watch,
  type Middleware,
} from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { ClipError } from '../../clipcore/errors.js';

export interface KubeClients {
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  watch: Watch;
  /** The namespace of the service account (in-cluster) or of the kubeconfig's context. */
  namespace: string | undefined;
  /** Closes the kept-alive connections. */
  close(): void;
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
  const server = config.getCurrentCluster()?.server ?? '';
  const agents = new AgentReuse();
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(server, {}),
    authMethods: { default: config },
    promiseMiddleware: [agents],
  });
  return {
    core: new CoreV1Api(configuration),
    custom: new CustomObjectsApi(configuration),
    coordination: new CoordinationV1Api(configuration),
    watch: new Watch(config),
    namespace,
    close: () => agents.close(),
  };
}

/**
 * client-node gives every call a new https.Agent, so every call opened its own TLS connection (a
 * handshake and a fresh TLS context each: 50,000 Events cost minutes of CPU and hundreds of MiB
 * until collected). This keeps one kept-alive agent while the TLS settings stay the same (they
 * change only if the kubeconfig's client certificate does); headers (the token) are per call.
 */
class AgentReuse implements Middleware {
  private cached: { key: string; agent: Agent } | undefined;

  async pre(context: Parameters<Middleware['pre']>[0]): Promise<typeof context> {
    const made = context.getAgent();
    if (made instanceof Agent) {
      const { ca, cert, key, pfx, rejectUnauthorized, servername } = made.options;
      const identity = [ca, cert, key, pfx, rejectUnauthorized, servername].map(String).join('\u0000');
      if (this.cached?.key !== identity) {
        this.cached?.agent.destroy();
        this.cached = { key: identity, agent: new Agent({ ...made.options, keepAlive: true }) };
      }
      context.setAgent(this.cached.agent);
    }
    return context;
  }

  async post(response: Parameters<Middleware['post']>[0]): Promise<typeof response> {
    return response;
  }

  close(): void {
    this.cached?.agent.destroy();
    this.cached = undefined;
  }
}

function readNamespace(): string | undefined {
  try {
    return readFileSync(`${SERVICE_ACCOUNT_DIR}/namespace`, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
