{{/* Names, labels and the blocks every component shares. */}}

{{- define "socketbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "socketbridge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "socketbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "socketbridge.labels" -}}
helm.sh/chart: {{ include "socketbridge.chart" . }}
app.kubernetes.io/name: {{ include "socketbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: socketbridge
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "worker"). */}}
{{- define "socketbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "socketbridge.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of one component's objects: (dict "root" $ "component" "worker"). */}}
{{- define "socketbridge.componentLabels" -}}
{{ include "socketbridge.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "socketbridge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "socketbridge.stateHost" -}}
{{- printf "%s-state" (include "socketbridge.fullname" .) -}}
{{- end -}}

{{/* The Secret holding scc-auth-key, auth-key, api-key and ops-key. */}}
{{- define "socketbridge.authSecretName" -}}
{{- default (include "socketbridge.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "socketbridge.rabbitmqSecretName" -}}
{{- default (include "socketbridge.fullname" .) .Values.rabbitmq.existingSecret -}}
{{- end -}}

{{- define "socketbridge.redisSecretName" -}}
{{- default (include "socketbridge.fullname" .) .Values.redis.existingSecret -}}
{{- end -}}

{{/* Whether the chart writes its own Secret: some value is not taken from an existing Secret. */}}
{{- define "socketbridge.createSecret" -}}
{{- if or (not .Values.auth.existingSecret) (not .Values.rabbitmq.existingSecret) (not .Values.redis.existingSecret) -}}
true
{{- end -}}
{{- end -}}

{{/*
A pod template annotation that changes with every value that goes into the chart's Secret, so that a
`helm upgrade` changing a key (auth.*, the RabbitMQ or Redis URL) rolls every component onto it
together, instead of pods picking it up one by one as they happen to restart (replicas with mixed
SCC_AUTH_KEYs cannot form one cluster). Keys the chart generated are read back unchanged, so they do
not move it; keys in an existingSecret are yours: restart after changing them.
*/}}
{{- define "socketbridge.secretChecksum" -}}
checksum/secret: {{ dict "auth" .Values.auth "rabbitmq" .Values.rabbitmq "redis" .Values.redis | toJson | sha256sum | quote }}
{{- end -}}

{{- define "socketbridge.operatorServiceAccountName" -}}
{{- default (printf "%s-operator" (include "socketbridge.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{/* Environment variables of one secret key: (dict "name" "SCC_AUTH_KEY" "secret" "x" "key" "y"). */}}
{{- define "socketbridge.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{/* SOCKETBRIDGE_OPS_KEY: /metrics, /cluster and /state answer 401 without it (the ServiceMonitor sends it). */}}
{{- define "socketbridge.opsKeyEnv" -}}
{{ include "socketbridge.secretEnv" (dict "name" "SOCKETBRIDGE_OPS_KEY" "secret" (include "socketbridge.authSecretName" .) "key" "ops-key") }}
{{- end -}}

{{/* What every cluster member (broker, worker, publisher) needs to join: the state server, the shared key, its pod IP, and the ops key. */}}
{{- define "socketbridge.clusterEnv" -}}
- name: SCC_STATE_SERVER_HOST
  value: {{ include "socketbridge.stateHost" . | quote }}
- name: SCC_STATE_SERVER_PORT
  value: {{ .Values.state.port | quote }}
{{ include "socketbridge.secretEnv" (dict "name" "SCC_AUTH_KEY" "secret" (include "socketbridge.authSecretName" .) "key" "scc-auth-key") }}
{{ include "socketbridge.opsKeyEnv" . }}
- name: SCC_INSTANCE_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: SOCKETBRIDGE_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{- define "socketbridge.redisEnv" -}}
{{ include "socketbridge.secretEnv" (dict "name" "SOCKETBRIDGE_REDIS_URL" "secret" (include "socketbridge.redisSecretName" .) "key" .Values.redis.existingSecretKey) }}
{{- end -}}

{{- define "socketbridge.rabbitmqEnv" -}}
{{ include "socketbridge.secretEnv" (dict "name" "SOCKETBRIDGE_RABBITMQ_URL" "secret" (include "socketbridge.rabbitmqSecretName" .) "key" .Values.rabbitmq.existingSecretKey) }}
{{- end -}}

{{/*
extraCaCerts: the private CA of Redis's or RabbitMQ's TLS servers, for the containers that connect to
them (publisher, workers, operator). Node reads NODE_EXTRA_CA_CERTS at start and trusts it besides
the system CAs. caVolumeMount continues containerCommon's volumeMounts list (include it right after).
*/}}
{{- define "socketbridge.extraCa" -}}
{{- if or .Values.extraCaCerts.secretName .Values.extraCaCerts.configMapName -}}
true
{{- end -}}
{{- end -}}

{{- define "socketbridge.caEnv" -}}
{{- if include "socketbridge.extraCa" . }}
- name: NODE_EXTRA_CA_CERTS
  value: {{ printf "/etc/socketbridge/ca/%s" .Values.extraCaCerts.key | quote }}
{{- end }}
{{- end -}}

{{- define "socketbridge.caVolumeMount" -}}
{{- if include "socketbridge.extraCa" . }}
- name: extra-ca
  mountPath: /etc/socketbridge/ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Only the CA's key is mounted: a cert-manager Secret also holds a private key (tls.key). */}}
{{- define "socketbridge.caVolume" -}}
{{- with .Values.extraCaCerts }}
{{- if .secretName }}
- name: extra-ca
  secret:
    secretName: {{ .secretName }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- else if .configMapName }}
- name: extra-ca
  configMap:
    name: {{ .configMapName }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* HTTP probes on the service's port: /readyz for readiness, /healthz for liveness and start-up. */}}
{{- define "socketbridge.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Pod-level settings every component shares: (dict "root" $ "component" "worker"). */}}
{{- define "socketbridge.podCommon" -}}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ .root.Values.topologySpread.maxSkew }}
    topologyKey: {{ .root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ .root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "socketbridge.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/* The parts of a container every component shares. */}}
{{- define "socketbridge.containerCommon" -}}
image: {{ include "socketbridge.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* What the operator may do with SocketBridges, their Secrets and Events: in a ClusterRole, or a Role in the one watched namespace. */}}
{{- /* Exactly what the operator calls (docs/operator.md, RBAC; operator/test/rbac.test.ts enforces the same rules). */ -}}
{{- define "socketbridge.operatorRules" -}}
- apiGroups: ["socketbridge.io"]
  resources: ["socketbridges"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["socketbridge.io"]
  resources: ["socketbridges/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
