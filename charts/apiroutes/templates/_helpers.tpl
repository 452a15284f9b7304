{{/* Chart name, overridable. */}}
{{- define "apiroutes.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: <release>-<chart>, or <release> when it already contains the
chart name. Kept to 40 characters so that "-operator-metrics" still fits in 63.
*/}}
{{- define "apiroutes.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "apiroutes.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "apiroutes.labels" -}}
helm.sh/chart: {{ include "apiroutes.chart" . }}
app.kubernetes.io/name: {{ include "apiroutes.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: apiroutes
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "apiroutes.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apiroutes.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. */}}
{{- define "apiroutes.componentLabels" -}}
{{ include "apiroutes.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "apiroutes.operator.fullname" -}}
{{ include "apiroutes.fullname" . }}-operator
{{- end }}

{{- define "apiroutes.gateway.fullname" -}}
{{ include "apiroutes.fullname" . }}-gateway
{{- end }}

{{- define "apiroutes.autoscaler.fullname" -}}
{{ include "apiroutes.fullname" . }}-autoscaler
{{- end }}

{{- define "apiroutes.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "apiroutes.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "apiroutes.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "apiroutes.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- required "gateway.serviceAccount.name is required when gateway.serviceAccount.create is false" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: (dict "image" .Values.operator.image "ctx" $). */}}
{{- define "apiroutes.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the Preview Mode Secret and its key. */}}
{{- define "apiroutes.preview.secretName" -}}
{{- default (printf "%s-preview" (include "apiroutes.fullname" .)) .Values.preview.existingSecret }}
{{- end }}

{{/*
Pod security context shared by both components: non-root uid/gid 65532 (distroless
"nonroot"), RuntimeDefault seccomp.
*/}}
{{- define "apiroutes.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "apiroutes.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Affinity of a component: the user's `affinity` if set, else anti-affinity between its own
replicas across nodes (soft, hard or none).
(dict "ctx" $ "component" "gateway" "values" .Values.gateway)
*/}}
{{- define "apiroutes.affinity" -}}
{{- if .values.affinity }}
{{- toYaml .values.affinity }}
{{- else if eq .values.podAntiAffinity "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "apiroutes.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- else if eq .values.podAntiAffinity "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "apiroutes.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 10 }}
{{- end }}
{{- end }}

{{/* Log level of a component: its own override, else the global one. */}}
{{- define "apiroutes.logLevel" -}}
{{- default .ctx.Values.logging.level .values.logLevel }}
{{- end }}

{{/*
Namespaces where function pods get the NetworkPolicy: networkPolicy.functionNamespaces,
else watchNamespaces, else the release namespace. Returned as a JSON list.
*/}}
{{- define "apiroutes.functionNamespaces" -}}
{{- $ns := .Values.networkPolicy.functionNamespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- $ns | uniq | toJson }}
{{- end }}

{{/* Default gateway URL for status.url: the gateway Service's in-cluster address. */}}
{{- define "apiroutes.gatewayUrl" -}}
{{- if .Values.operator.gatewayUrl }}
{{- .Values.operator.gatewayUrl }}
{{- else if eq (int .Values.gateway.service.port) 80 }}
{{- printf "http://%s.%s.svc" (include "apiroutes.gateway.fullname" .) .Release.Namespace }}
{{- else }}
{{- printf "http://%s.%s.svc:%d" (include "apiroutes.gateway.fullname" .) .Release.Namespace (int .Values.gateway.service.port) }}
{{- end }}
{{- end }}

{{/* PodDisruptionBudget spec body: (dict "pdb" .Values.x.podDisruptionBudget). */}}
{{- define "apiroutes.pdbBudget" -}}
{{- if not (kindIs "invalid" .pdb.minAvailable) }}
minAvailable: {{ .pdb.minAvailable }}
{{- else }}
maxUnavailable: {{ .pdb.maxUnavailable }}
{{- end }}
{{- end }}

{{/*
Span export settings of both components: the collector URL, and with
tracing.otlpCaSecret the CA its https:// certificate is checked against (a Secret with
ca.crt, mounted read-only). Each part takes the root context.
*/}}
{{- define "apiroutes.otlp.env" -}}
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if .Values.tracing.otlpCaSecret }}
- name: OTEL_EXPORTER_OTLP_CERTIFICATE
  value: /etc/apiroutes/otlp-ca/ca.crt
{{- end }}
{{- end }}

{{- define "apiroutes.otlp.volumeMount" -}}
{{- if .Values.tracing.otlpCaSecret }}
- name: otlp-ca
  mountPath: /etc/apiroutes/otlp-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "apiroutes.otlp.volume" -}}
{{- with .Values.tracing.otlpCaSecret }}
- name: otlp-ca
  secret:
    secretName: {{ . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}
