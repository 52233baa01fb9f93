/** Users (bearer tokens) and their RBAC PolicyRules, checked as kube's RBAC authorizer does. */
import { randomBytes } from 'node:crypto';
import { forbidden, unauthorized, type ApiError } from './errors.js';

export interface PolicyRule {
  verbs: string[];
  apiGroups: string[];
  // `pods`, `pods/status`, `*`, `*/status`.
  resources: string[];
  resourceNames?: string[];
  /** Namespaces the rule applies in (a RoleBinding's namespace); absent for a ClusterRoleBinding. */
  namespaces?: string[];
}

export const ALLOW_ALL: PolicyRule[] = [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }];

export interface RequestAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

function has(list: string[] | undefined, value: string): boolean {
  return list === undefined || list.length === 0 || list.includes('*') || list.includes(value);
}

function resourceMatches(rules: string[], resource: string, subresource: string): boolean {
  const full = subresource === '' ? resource : `${resource}/${subresource}`;
  return rules.some((r) => r === '*' || r === full || (subresource !== '' && r === `*/${subresource}`));
}

function allows(rule: PolicyRule, a: RequestAttributes): boolean {
  return (
    (rule.verbs.includes('*') || rule.verbs.includes(a.verb)) &&
    (rule.apiGroups.includes('*') || rule.apiGroups.includes(a.group)) &&
    resourceMatches(rule.resources, a.resource, a.subresource) &&
    // kube: resourceNames never match list, watch, create or deletecollection (no name is known).
    (rule.resourceNames === undefined || rule.resourceNames.length === 0 || (a.name !== '' && rule.resourceNames.includes(a.name))) &&
    (rule.namespaces === undefined || (a.namespace !== '' && has(rule.namespaces, a.namespace)))
  );
}

export class Users {
  private readonly byToken = new Map<string, string>();
  private readonly rules = new Map<string, PolicyRule[]>();

  /** Adds (or re-rules) a user and returns a new bearer token for it. */
  add(user: string, rules: PolicyRule[], token = randomBytes(24).toString('hex')): string {
    this.byToken.set(token, user);
    this.rules.set(user, rules);
    return token;
  }

  setRules(user: string, rules: PolicyRule[]): void {
    if (!this.rules.has(user)) throw new Error(`unknown user ${user}`);
    this.rules.set(user, rules);
  }

  tokenOf(user: string): string {
    for (const [token, name] of this.byToken) if (name === user) return token;
    throw new Error(`unknown user ${user}`);
  }

  /** The user a `Bearer` Authorization header names, or 401. */
  authenticate(header: string | undefined): string {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    const user = m === null ? undefined : this.byToken.get(m[1] ?? '');
    if (user === undefined) throw unauthorized();
    return user;
  }

  /** Throws kube's 403 when no rule of the user allows the request. */
  authorize(user: string, a: RequestAttributes): void {
    if ((this.rules.get(user) ?? []).some((r) => allows(r, a))) return;
    throw denied(user, a);
  }
}

function denied(user: string, a: RequestAttributes): ApiError {
  const ref = { resource: a.resource, group: a.group };
  const what = a.group === '' ? a.resource : `${a.resource}.${a.group}`;
  const full = a.subresource === '' ? a.resource : `${a.resource}/${a.subresource}`;
  const subject = a.name === '' ? `${what} is forbidden` : `${what} "${a.name}" is forbidden`;
  const scope = a.namespace === '' ? 'at the cluster scope' : `in the namespace "${a.namespace}"`;
  const message = `${subject}: User "${user}" cannot ${a.verb} resource "${full}" in API group "${a.group}" ${scope}`;
  return forbidden(ref, message, a.name === '' ? undefined : a.name);
}
