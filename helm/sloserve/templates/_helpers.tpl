{{/*
Names and labels, kube-state-metrics style: every template uses these helpers so that
nameOverride / fullnameOverride / namespaceOverride apply everywhere at once.
*/}}

{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "sloserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; the release name alone when it already contains the chart name. */}}
{{- define "sloserve.fullname" -}}
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

{{/* Namespace of the chart's namespaced objects. */}}
{{- define "sloserve.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/* chart label value: name-version with "+" made label-safe. */}}
{{- define "sloserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that never change for the life of a release: safe in Deployment selectors. */}}
{{- define "sloserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sloserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels on every object. */}}
{{- define "sloserve.labels" -}}
helm.sh/chart: {{ include "sloserve.chart" . }}
{{ include "sloserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sloserve
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* ServiceAccount the operator runs as. */}}
{{- define "sloserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sloserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the ClusterKopfPeering object shared by the operator replicas. */}}
{{- define "sloserve.peeringName" -}}
{{- default (include "sloserve.fullname" .) .Values.operator.peering.name -}}
{{- end -}}

{{/* Operator image reference: registry/repository, then @digest or :tag (appVersion by default). */}}
{{- define "sloserve.image" -}}
{{- $img := .Values.operator.image -}}
{{- $repo := ternary (printf "%s/%s" $img.registry $img.repository) $img.repository (ne $img.registry "") -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Runbook link of one alert: <runbookBaseUrl>#<anchor>. */}}
{{- define "sloserve.runbook" -}}
{{- printf "%s#%s" .root.Values.prometheusRule.runbookBaseUrl (lower .alert) -}}
{{- end -}}
