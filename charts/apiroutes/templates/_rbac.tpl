{{/* The operator's per-route rules (ClusterRole, or a Role per watched namespace). */}}
{{- define "apiroutes.rbac.operatorRules" -}}
- apiGroups: ["apiroutes.dev"]
  resources: ["apiroutes"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apiroutes.dev"]
  resources: ["apiroutes/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Each route's NetworkPolicy (networkPolicy.enabled): applied, never listed; deleted with
# the route by garbage collection.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch", "update"]
# Status derivation (ready replicas, crash loops, image pull errors).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The gateway's rules: read-only, three resources. Services only list/watch: it
checks that a slice's owner Service is the operator's before trusting the slice. */}}
{{- define "apiroutes.rbac.gatewayRules" -}}
- apiGroups: ["apiroutes.dev"]
  resources: ["apiroutes"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
{{- end }}
