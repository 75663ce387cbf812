{{/* Names and labels shared by the templates. */}}

{{- define "flink-gitops.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flink-gitops.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flink-gitops.labels" -}}
{{ include "flink-gitops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "flink-gitops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flink-gitops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when the replicas elect a leader: two or more replicas, or asked for. */}}
{{- define "flink-gitops.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the Git credentials, "" when there is none. */}}
{{- define "flink-gitops.gitSecretName" -}}
{{- if .Values.git.existingSecret -}}
{{- .Values.git.existingSecret -}}
{{- else if or .Values.git.token .Values.git.sshKey -}}
{{- printf "%s-git" (include "flink-gitops.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the webhook secret, "" when there is none. */}}
{{- define "flink-gitops.webhookSecretName" -}}
{{- if .Values.webhook.existingSecret -}}
{{- .Values.webhook.existingSecret -}}
{{- else if .Values.webhook.secret -}}
{{- printf "%s-webhook" (include "flink-gitops.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Namespaces the Flink service account goes to. */}}
{{- define "flink-gitops.flinkNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- join "," .Values.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/*
The rules the agent needs in a namespace it manages (src/apply/kubernetes/runtime.rs):
the Flink cluster's objects, its pods (observe, force-delete after a stop), REST through
the API server (port-forward; GET is the WebSocket upgrade kube-rs uses, POST what newer
API servers also require), pod logs and events for failure reasons.
*/}}
{{- define "flink-gitops.managerRules" -}}
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: [""]
  resources: ["pods/portforward"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
{{- end -}}
