{{/* Object names: the release name when it contains the chart name (so `helm install ecr-access-operator`
gives the same names as deploy/base), else "<release>-<chart>". */}}
{{- define "ecr-access-operator.fullname" -}}
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

{{- define "ecr-access-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ecr-access-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecr-access-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ecr-access-operator.labels" -}}
{{ include "ecr-access-operator.selectorLabels" . }}
app.kubernetes.io/part-of: ecr-access-operator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The metrics objects render when the operator serves metrics (metrics.port not 0). A ServiceMonitor or rules
asked for without metrics, or a ServiceMonitor without the Service it selects, fail the render: they would scrape
nothing, and the rules would alert on series that never exist. */}}
{{- define "ecr-access-operator.metricsChecked" -}}
{{- $m := .Values.metrics -}}
{{- if not $m.port -}}
{{- if $m.serviceMonitor.enabled -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics: metrics.port is 0, so the operator serves none; set metrics.port (default 8000) or disable the ServiceMonitor" -}}
{{- end -}}
{{- if $m.prometheusRule.enabled -}}
{{- fail "metrics.prometheusRule.enabled needs metrics: metrics.port is 0, so the operator serves none and the rules' series would never exist; set metrics.port (default 8000) or disable the rules" -}}
{{- end -}}
{{- else if and $m.serviceMonitor.enabled (not $m.service.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor scrapes through that Service" -}}
{{- end -}}
{{- end -}}
