{{/* <release>-operator: wsfleet-operator for a release named wsfleet, the names deploy/operator uses. */}}
{{- define "wsfleet.fullname" -}}
{{- default (printf "%s-operator" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wsfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wsfleet.fullname" . }}
{{- end -}}

{{- define "wsfleet.labels" -}}
{{ include "wsfleet.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "wsfleet.clusterScoped" -}}
{{- if not (has .Values.scope (list "cluster" "namespace")) -}}
{{- fail (printf "values.yaml: scope: %q: must be cluster (every namespace, a ClusterRole) or namespace (the release's, a Role)" .Values.scope) -}}
{{- end -}}
{{- if eq .Values.scope "cluster" }}true{{ end -}}
{{- end -}}

{{/* The operator's rules: the same as deploy/operator/rbac.yaml (tests/unit/test_helm.py compares). */}}
{{- define "wsfleet.rules" -}}
# The resource itself: kopf keeps its bookkeeping in annotations (patch); status is ours.
- apiGroups: [wsfleet.dev]
  resources: [websocketservices]
  verbs: [get, list, watch, patch]
- apiGroups: [wsfleet.dev]
  resources: [websocketservices/status]
  verbs: [get, patch, update]
{{- if include "wsfleet.clusterScoped" . }}
# kopf discovers resources and notices CRDs being installed.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
# One event per write and per refusal.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Children: server-side apply (create + patch), drift watch (get, list, watch), pruning (delete).
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [cloud.google.com]
  resources: [backendconfigs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [gateway.envoyproxy.io]
  resources: [backendtrafficpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.gke.io]
  resources: [gcpbackendpolicies, healthcheckpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [traefik.io]
  resources: [traefikservices]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, prometheusrules]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}

{{- define "wsfleet.leaseRules" -}}
# Leader election: the Lease in the operator's own namespace, nothing elsewhere.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end -}}
