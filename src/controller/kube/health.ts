/**
 * The Kubernetes side's readiness: a set of named problems (a watch not yet synced, the API not
 * answering, a verb RBAC denies). A 403 is logged once per verb and resource, naming both, so a
 * missing RBAC rule is found from the log and from /readyz alike.
 */
import type { Logger } from '../../csi/log.js';
import { describeApiError, isForbidden } from './api-error.js';

/** What was asked of the API: `list` `pods` (cluster-wide) / `update` `leases` in `kube-system`. */
export interface ApiCall {
  verb: string;
  resource: string;
  namespace?: string;
}

export class Health {
  private readonly problems = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  set(key: string, problem: string): void {
    this.problems.set(key, problem);
  }

  clear(key: string): void {
    this.problems.delete(key);
  }

  /** Records a failed call under `key`, logging it once while it stays the same. */
  failed(key: string, call: ApiCall, err: unknown): void {
    const where = call.namespace ? ` in namespace ${call.namespace}` : '';
    if (isForbidden(err)) {
      const problem = `forbidden: the controller may not ${call.verb} ${call.resource}${where} (grant it in its RBAC rules)`;
      if (this.problems.get(key) !== problem) this.log('error', problem, { verb: call.verb, resource: call.resource, namespace: call.namespace, error: describeApiError(err) });
      this.problems.set(key, problem);
      return;
    }
    const problem = `${call.verb} ${call.resource}${where} failed: ${describeApiError(err)}`;
    if (this.problems.get(key) !== problem) this.log('warn', problem, { verb: call.verb, resource: call.resource, namespace: call.namespace });
    this.problems.set(key, problem);
  }

  /**
   * For one-off calls (an Event, a secret, a status write), which no loop retries: only a 403
   * makes the replica unready (until such a call next succeeds); other failures are just logged.
   */
  refused(key: string, call: ApiCall, err: unknown): void {
    if (isForbidden(err)) this.failed(key, call, err);
    else this.log('warn', `${call.verb} ${call.resource}${call.namespace ? ` in namespace ${call.namespace}` : ''} failed: ${describeApiError(err)}`, { verb: call.verb, resource: call.resource });
  }

  readiness(): { ready: boolean; reasons: string[] } {
    const reasons = [...this.problems.values()];
    return { ready: reasons.length === 0, reasons };
  }
}
