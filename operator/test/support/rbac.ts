import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

/** One rule of a Role or ClusterRole (rbac.authorization.k8s.io/v1). */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** Rules a subject holds: in one namespace (a RoleBinding), or everywhere (a ClusterRoleBinding). */
export interface Grant {
  namespace?: string;
  rules: PolicyRule[];
  /** Where the rules came from, for messages: `ClusterRole/x`, `Role/ns/x`. */
  source: string;
}

interface RbacObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: PolicyRule[];
  roleRef?: { kind: string; name: string };
  subjects?: Array<{ kind: string; name: string; namespace?: string }>;
}

/**
 * What RBAC grants a ServiceAccount, from manifests as `kubectl apply` would create them: every
 * RoleBinding and ClusterRoleBinding naming it, resolved to its Role or ClusterRole. Objects
 * without a namespace get `defaultNamespace` (what kustomize's `namespace:` sets).
 */
export function grantsFor(paths: string[], serviceAccount: { name: string; namespace: string }, defaultNamespace: string): Grant[] {
  const objects: RbacObject[] = paths.flatMap((path) =>
    parseAllDocuments(readFileSync(path, 'utf8'))
      .map((document) => document.toJS() as RbacObject | null)
      .filter((object): object is RbacObject => Boolean(object?.kind)),
  );
  const namespaced = (object: RbacObject) => object.metadata.namespace ?? defaultNamespace;
  const grants: Grant[] = [];
  for (const binding of objects) {
    if (binding.kind !== 'RoleBinding' && binding.kind !== 'ClusterRoleBinding') continue;
    const named = (binding.subjects ?? []).some(
      (s) => s.kind === 'ServiceAccount' && s.name === serviceAccount.name && (s.namespace ?? namespaced(binding)) === serviceAccount.namespace,
    );
    if (!named || !binding.roleRef) continue;
    const role = objects.find((o) => o.kind === binding.roleRef!.kind && o.metadata.name === binding.roleRef!.name && (o.kind === 'ClusterRole' || namespaced(o) === namespaced(binding)));
    if (!role) throw new Error(`${binding.kind}/${binding.metadata.name} refers to ${binding.roleRef.kind}/${binding.roleRef.name}, which the manifests do not define`);
    grants.push({
      ...(binding.kind === 'RoleBinding' ? { namespace: namespaced(binding) } : {}),
      rules: role.rules ?? [],
      source: role.kind === 'Role' ? `Role/${namespaced(role)}/${role.metadata.name}` : `ClusterRole/${role.metadata.name}`,
    });
  }
  return grants;
}

/** A request as RBAC sees it. */
export interface Attributes {
  verb: string;
  apiGroup: string;
  /** `socketbridges`, `socketbridges/status`, … */
  resource: string;
  /** Undefined for a request across all namespaces (or a cluster-scoped resource). */
  namespace?: string;
  name?: string;
}

/** The rule (and its grant) that allows the request, as the RBAC authorizer decides: any match allows; nothing denies. */
export function allowedBy(grants: Grant[], request: Attributes): { grant: Grant; rule: PolicyRule } | undefined {
  for (const grant of grants) {
    // A RoleBinding's rules hold in its namespace only; a request across namespaces needs a ClusterRoleBinding.
    if (grant.namespace !== undefined && grant.namespace !== request.namespace) continue;
    for (const rule of grant.rules) {
      const group = rule.apiGroups.includes('*') || rule.apiGroups.includes(request.apiGroup);
      const resource = rule.resources.includes('*') || rule.resources.includes(request.resource);
      const verb = rule.verbs.includes('*') || rule.verbs.includes(request.verb);
      const name = !rule.resourceNames?.length || (request.name !== undefined && rule.resourceNames.includes(request.name));
      if (group && resource && verb && name) return { grant, rule };
    }
  }
  return undefined;
}

/** Every (grant, rule, verb, resource) the grants hold, as `source: group/resource verb[ name]`, for "is every rule used". */
export function everyPermission(grants: Grant[]): string[] {
  return grants.flatMap((grant) =>
    grant.rules.flatMap((rule) => rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${grant.source}: ${group}/${resource} ${verb}`)))),
  );
}
