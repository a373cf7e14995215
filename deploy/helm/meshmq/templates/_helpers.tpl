{{/* Names, labels and the in-pod paths every template agrees on. */}}

{{- define "meshmq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Kubernetes names are at most 63 characters; the headless Service adds "-headless". */}}
{{- define "meshmq.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "meshmq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meshmq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshmq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "meshmq.labels" -}}
helm.sh/chart: {{ include "meshmq.chart" . }}
{{ include "meshmq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshmq
{{- end }}

{{/* The Service that gives every pod a stable DNS name and lists them all for --peers_dns. */}}
{{- define "meshmq.headlessName" -}}
{{- printf "%s-headless" (include "meshmq.fullname" .) }}
{{- end }}

{{/* The headless Service's name: its A records are every pod, ready or not. */}}
{{- define "meshmq.peersDns" -}}
{{- printf "%s.%s.svc.%s" (include "meshmq.headlessName" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{- define "meshmq.secretName" -}}
{{- .Values.auth.existingSecret.name | default (include "meshmq.fullname" .) }}
{{- end }}

{{- define "meshmq.adminTokenKey" -}}
{{- if .Values.auth.existingSecret.name }}{{ .Values.auth.existingSecret.adminTokenKey }}{{ else }}admin-token{{ end }}
{{- end }}

{{/* The Secret key holding the password file, or nothing when there is none. */}}
{{- define "meshmq.passwordFileKey" -}}
{{- if .Values.auth.existingSecret.name }}{{ .Values.auth.existingSecret.passwordFileKey }}{{ else if .Values.auth.passwordFile }}passwd{{ end }}
{{- end }}

{{- define "meshmq.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Where things are inside the pod. */}}
{{- define "meshmq.dataMount" -}}/var/lib/meshmq{{- end }}
{{- define "meshmq.configMount" -}}/etc/meshmq/config{{- end }}
{{- define "meshmq.secretMount" -}}/etc/meshmq/secret{{- end }}
{{- define "meshmq.adminTokenPath" -}}{{ include "meshmq.secretMount" . }}/admin-token{{- end }}
