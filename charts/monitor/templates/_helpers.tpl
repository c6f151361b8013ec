{{/* Chart name, at most 63 characters (a DNS label). */}}
{{- define "monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: release name + chart name (once when the release name contains it), at most 63 characters. */}}
{{- define "monitor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "monitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "monitor.labels" -}}
helm.sh/chart: {{ include "monitor.chart" . }}
{{ include "monitor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: monitor
{{- end }}

{{/* Labels that select the service's pods; never change them on upgrade (a Deployment's selector is immutable). */}}
{{- define "monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the ServiceMonitor and the PrometheusRule: kube-prometheus-stack's Prometheus selects `release: <its release>`. */}}
{{- define "monitor.monitoringLabels" -}}
{{ include "monitor.labels" . }}
{{- with .Values.monitoring.release }}
release: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "monitor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "monitor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "monitor.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The chart's own Secret, holding the credentials given as values (not those of existing Secrets). */}}
{{- define "monitor.secretName" -}}
{{- printf "%s-credentials" (include "monitor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Whether the chart's own Secret has anything to hold. */}}
{{- define "monitor.ownSecretNeeded" -}}
{{- $k := .Values.kafka.sasl }}
{{- if or (and $k.enabled (not $k.existingSecret)) (and .Values.redis.password (not .Values.redis.existingSecret)) (and .Values.api.token (not .Values.api.existingSecret)) (and .Values.api.readToken (not .Values.api.existingSecret)) -}}
true
{{- end }}
{{- end }}

{{/* Name of the Secret with the Kafka TLS files (ca.crt, optional tls.crt and tls.key). */}}
{{- define "monitor.kafkaTlsSecretName" -}}
{{- .Values.kafka.tls.existingSecret | default (printf "%s-kafka-tls" (include "monitor.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{/* Whether Redis needs a password: given as a value or in an existing Secret. */}}
{{- define "monitor.redisHasPassword" -}}
{{- if or .Values.redis.password .Values.redis.existingSecret -}}
true
{{- end }}
{{- end }}

{{/* Whether /api writes have a token: given as a value or in an existing Secret. */}}
{{- define "monitor.apiHasToken" -}}
{{- if or .Values.api.token .Values.api.existingSecret -}}
true
{{- end }}
{{- end }}

{{/* Whether /api reads need a token: one in the chart's Secret, or a key of existingSecret. */}}
{{- define "monitor.apiHasReadToken" -}}
{{- if or (and .Values.api.readToken (not .Values.api.existingSecret)) (and .Values.api.existingSecret .Values.api.readTokenKey) -}}
true
{{- end }}
{{- end }}

{{/* librdkafka's security.protocol for the Kafka settings. */}}
{{- define "monitor.kafkaSecurityProtocol" -}}
{{- if and .Values.kafka.sasl.enabled .Values.kafka.tls.enabled }}SASL_SSL
{{- else if .Values.kafka.sasl.enabled }}SASL_PLAINTEXT
{{- else if .Values.kafka.tls.enabled }}SSL
{{- else }}PLAINTEXT
{{- end }}
{{- end }}

{{/* A resource name made from a file name: lower case, dots and underscores as dashes. */}}
{{- define "monitor.fileResourceName" -}}
{{- $root := index . 0 }}
{{- $file := index . 1 }}
{{- printf "%s-%s" (include "monitor.fullname" $root) ($file | lower | replace "." "-" | replace "_" "-") | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Kafka security settings of a container's env, in librdkafka's terms (the service's and the archive's). */}}
{{- define "monitor.kafkaEnv" -}}
{{- $secretName := include "monitor.secretName" . -}}
# Kafka security settings, in librdkafka's terms: `monitor serve` and `monitor archive` read MONITOR_KAFKA_SASL_USERNAME as
# sasl.username and so on (see the chart's values.yaml, kafka.sasl and kafka.tls).
- name: MONITOR_KAFKA_SECURITY_PROTOCOL
  value: {{ include "monitor.kafkaSecurityProtocol" . | quote }}
{{- if .Values.kafka.sasl.enabled }}
- name: MONITOR_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: MONITOR_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      {{- if .Values.kafka.sasl.existingSecret }}
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.usernameKey }}
      {{- else }}
      name: {{ $secretName }}
      key: kafka-sasl-username
      {{- end }}
- name: MONITOR_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if .Values.kafka.sasl.existingSecret }}
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
      {{- else }}
      name: {{ $secretName }}
      key: kafka-sasl-password
      {{- end }}
{{- end }}
{{- if .Values.kafka.tls.enabled }}
- name: MONITOR_KAFKA_SSL_CA_LOCATION
  value: /etc/monitor/kafka-tls/ca.crt
{{- if .Values.kafka.tls.clientAuth }}
- name: MONITOR_KAFKA_SSL_CERTIFICATE_LOCATION
  value: /etc/monitor/kafka-tls/tls.crt
- name: MONITOR_KAFKA_SSL_KEY_LOCATION
  value: /etc/monitor/kafka-tls/tls.key
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the archive's pods: another app.kubernetes.io/name, so the service's selectors never match them. */}}
{{- define "monitor.archiveSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-archive" (include "monitor.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the archive's resources. */}}
{{- define "monitor.archiveLabels" -}}
helm.sh/chart: {{ include "monitor.chart" . }}
{{ include "monitor.archiveSelectorLabels" . }}
app.kubernetes.io/component: archive
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: monitor
{{- end }}

{{/* Name of the archive's resources. */}}
{{- define "monitor.archiveName" -}}
{{- printf "%s-archive" (include "monitor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
