{{/* Names, labels and the service config the chart renders. */}}

{{- define "omnisci-handoff.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "omnisci-handoff.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "omnisci-handoff.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "omnisci-handoff.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "omnisci-handoff.selectorLabels" -}}
app.kubernetes.io/name: {{ include "omnisci-handoff.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "omnisci-handoff.labels" -}}
{{ include "omnisci-handoff.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "omnisci-handoff.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "omnisci-handoff.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "omnisci-handoff.tlsSecretName" -}}
{{- if eq .Values.admission.tls.mode "existingSecret" }}
{{- .Values.admission.tls.existingSecret.name }}
{{- else }}
{{- printf "%s-webhook-tls" (include "omnisci-handoff.fullname" .) }}
{{- end }}
{{- end }}

{{- define "omnisci-handoff.jupyterConfigMap" -}}
{{- printf "%s-jupyter" (include "omnisci-handoff.fullname" .) }}
{{- end }}

{{/* Hub base URL with one trailing slash. */}}
{{- define "omnisci-handoff.baseUrl" -}}
{{- printf "%s/" (trimSuffix "/" .Values.jupyterhub.baseUrl) }}
{{- end }}

{{- define "omnisci-handoff.basePath" -}}
{{- printf "%sservices/%s/" (include "omnisci-handoff.baseUrl" .) .Values.jupyterhub.serviceName }}
{{- end }}

{{/* z2jh labels of the hub, proxy and single-user pods; `release` only when the z2jh release is named. */}}
{{- define "omnisci-handoff.z2jhLabels" -}}
app: jupyterhub
{{- with .Values.jupyterhub.release }}
release: {{ . }}
{{- end }}
{{- end }}

{{- define "omnisci-handoff.keysDir" -}}/etc/omnisci-handoff/keys{{- end }}
{{- define "omnisci-handoff.tlsDir" -}}/etc/omnisci-handoff/tls{{- end }}
{{- define "omnisci-handoff.hubTokenFile" -}}/etc/omnisci-handoff/hub/token{{- end }}
{{- define "omnisci-handoff.ticketKeysDir" -}}/etc/omnisci-handoff/tickets{{- end }}

{{/* The Secret of the ticket keys: the admin's, or the one the chart generates (templates/ticket-keys.yaml). */}}
{{- define "omnisci-handoff.ticketKeysSecret" -}}
{{- .Values.ticketKeys.secretName | default (printf "%s-ticket-keys" (include "omnisci-handoff.fullname" .)) }}
{{- end }}
{{- define "omnisci-handoff.ticketKeysKey" -}}
{{- ternary .Values.ticketKeys.key "ticket-keys" (ne .Values.ticketKeys.secretName "") }}
{{- end }}

{{/*
The service config: .Values.config plus the keys the chart manages (values.schema.json forbids
them in .Values.config). Returned as YAML; callers use `fromYaml`.
*/}}
{{- define "omnisci-handoff.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $keys := .Values.tokenKeys }}
{{- $_ := set $cfg.listen "host" "0.0.0.0" }}
{{- $_ := set $cfg.listen.internal "host" "0.0.0.0" }}
{{- $_ := set $cfg.listen "basePath" (include "omnisci-handoff.basePath" .) }}
{{- $_ := set $cfg.store "backend" "kubernetes" }}
{{- $_ := set $cfg.store.kubernetes "namespace" .Release.Namespace }}
{{- $files := list }}
{{- if $keys.publicKeys.secretName }}
{{- range $keys.publicKeys.items }}
{{- $files = append $files (printf "%s/public/%s" (include "omnisci-handoff.keysDir" $) .) }}
{{- end }}
{{- end }}
{{- $_ := set $cfg.token.keys "publicKeyFiles" $files }}
{{- if $keys.hmacSecret.secretName }}
{{- $_ := set $cfg.token.keys "hmacSecretFile" (printf "%s/hmac/%s" (include "omnisci-handoff.keysDir" .) $keys.hmacSecret.key) }}
{{- end }}
{{- if not $cfg.hub.apiUrl }}
{{- $_ := set $cfg.hub "apiUrl" (printf "http://hub:8081%shub/api" (include "omnisci-handoff.baseUrl" .)) }}
{{- end }}
{{- if $cfg.hub.enabled }}
{{- $_ := set $cfg.hub "apiTokenFile" (include "omnisci-handoff.hubTokenFile" .) }}
{{- $_ := set $cfg.hub "ticketKeyFile" (printf "%s/%s" (include "omnisci-handoff.ticketKeysDir" .) (include "omnisci-handoff.ticketKeysKey" .)) }}
{{- end }}
{{- if $cfg.webhook.enabled }}
{{- $_ := set $cfg.webhook "host" "0.0.0.0" }}
{{- $_ := set $cfg.webhook "certFile" (printf "%s/tls.crt" (include "omnisci-handoff.tlsDir" .)) }}
{{- $_ := set $cfg.webhook "keyFile" (printf "%s/tls.key" (include "omnisci-handoff.tlsDir" .)) }}
{{- end }}
{{- $_ := set $cfg.webhook "jupyterConfigMap" (include "omnisci-handoff.jupyterConfigMap" .) }}
{{- toYaml $cfg }}
{{- end }}


{{- define "omnisci-handoff.webhookPath" -}}/mutate{{- end }}
