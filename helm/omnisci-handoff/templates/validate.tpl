{{/*
Contradictory values fail here, before anything is rendered. The config-level checks are the
service's own rules (src/config/rules.ts); test/integration/helm.test.ts runs each both ways.
*/}}
{{- define "omnisci-handoff.validate" -}}
{{- $c := .Values.config }}
{{- $k := .Values.tokenKeys }}
{{- $hs := list "HS256" "HS384" "HS512" }}
{{- $wantsHmac := false }}
{{- $wantsPublic := false }}
{{- range $c.token.algorithms }}
{{- if has . $hs }}{{ $wantsHmac = true }}{{ else }}{{ $wantsPublic = true }}{{ end }}
{{- end }}
{{- $hasHmac := ne $k.hmacSecret.secretName "" }}
{{- $hasPublic := or (ne $k.publicKeys.secretName "") (ne ($c.token.keys.jwksUrl | default "") "") }}
{{- if and (ne $k.publicKeys.secretName "") (empty $k.publicKeys.items) }}
{{- fail "tokenKeys.publicKeys.items must list the key files of Secret tokenKeys.publicKeys.secretName" }}
{{- end }}
{{- if not (or $hasHmac $hasPublic $c.heavydb.enabled) }}
{{- fail "no verification key: set tokenKeys.publicKeys.secretName, tokenKeys.hmacSecret.secretName or config.token.keys.jwksUrl (or config.heavydb.enabled, header mode, without token handoffs)" }}
{{- end }}
{{- if and (or $hasHmac $hasPublic) (not $c.token.issuer) }}
{{- fail "config.token.issuer is required when token keys are configured" }}
{{- end }}
{{- if and (or $hasHmac $hasPublic) (not $c.token.audience) }}
{{- fail "config.token.audience is required when token keys are configured" }}
{{- end }}
{{- if and $wantsHmac (not $hasHmac) }}
{{- fail "config.token.algorithms allows HS256/384/512 but tokenKeys.hmacSecret.secretName is empty" }}
{{- end }}
{{- if and $hasHmac (not $wantsHmac) }}
{{- fail "tokenKeys.hmacSecret.secretName is set but config.token.algorithms allows no HS* algorithm" }}
{{- end }}
{{- if and $hasPublic (not $wantsPublic) }}
{{- fail "public keys are configured (tokenKeys.publicKeys.secretName or config.token.keys.jwksUrl) but config.token.algorithms allows only HS* algorithms" }}
{{- end }}
{{- if and $c.webhook.enabled (eq .Values.admission.tls.mode "existingSecret") }}
{{- if not (and .Values.admission.tls.existingSecret.name .Values.admission.tls.existingSecret.caBundle) }}
{{- fail "admission.tls.mode existingSecret needs admission.tls.existingSecret.name and admission.tls.existingSecret.caBundle" }}
{{- end }}
{{- if not (contains "-----BEGIN CERTIFICATE-----" .Values.admission.tls.existingSecret.caBundle) }}
{{- fail "admission.tls.existingSecret.caBundle must be a PEM certificate" }}
{{- end }}
{{- end }}
{{- if and (ne .Values.admission.tls.mode "existingSecret") (or .Values.admission.tls.existingSecret.name .Values.admission.tls.existingSecret.caBundle) }}
{{- fail (printf "admission.tls.existingSecret is set but admission.tls.mode is %s (set mode: existingSecret)" .Values.admission.tls.mode) }}
{{- end }}
{{- if and (ne .Values.admission.tls.mode "certManager") .Values.admission.tls.certManager.issuerRef.name }}
{{- fail (printf "admission.tls.certManager.issuerRef is set but admission.tls.mode is %s (set mode: certManager)" .Values.admission.tls.mode) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not $c.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs config.metrics.enabled" }}
{{- end }}
{{- with $c.token.keys.jwksUrl }}
{{- if not (or (hasPrefix "https://" .) (regexMatch "^http://(127\\.[0-9.]+|localhost|\\[::1\\])(:[0-9]+)?(/|$)" .)) }}
{{- fail "config.token.keys.jwksUrl must be https:// (http:// only on a loopback address)" }}
{{- end }}
{{- end }}
{{- if and $c.user.stripEmailDomain (empty $c.user.emailDomains) }}
{{- fail "config.user.stripEmailDomain needs config.user.emailDomains: the domains whose addresses become hub users" }}
{{- end }}
{{- if and $c.token.type (eq $c.token.type $c.token.revokeType) }}
{{- fail "config.token.revokeType must differ from config.token.type" }}
{{- end }}
{{- if not (contains "{username}" $c.redirect.labUrlTemplate) }}
{{- fail "config.redirect.labUrlTemplate must contain {username}" }}
{{- end }}
{{- if and (or $c.hub.serverName $c.hub.namedServers.enabled) (not (or (contains "{servername}" $c.redirect.labUrlTemplate) (contains "/user/{username}/" $c.redirect.labUrlTemplate))) }}
{{- fail "config.redirect.labUrlTemplate must contain {servername} or /user/{username}/ when a named server opens (config.hub.serverName, config.hub.namedServers)" }}
{{- end }}
{{- if and $c.hub.namedServers.enabled (empty $c.hub.namedServers.allowed) (not $c.hub.namedServers.pattern) }}
{{- fail "config.hub.namedServers.enabled needs config.hub.namedServers.allowed or pattern: the servers a handoff may open" }}
{{- end }}
{{- $envNames := list $c.notebook.env.protocol $c.notebook.env.host $c.notebook.env.port }}
{{- if or (ne (len ($envNames | uniq)) 3) (has "JUPYTER_CONFIG_PATH" $envNames) }}
{{- fail "config.notebook.env: the protocol, host and port env var names must differ from each other and from JUPYTER_CONFIG_PATH" }}
{{- end }}
{{- if eq (clean $c.notebook.sessionDir) (clean $c.webhook.jupyterConfigDir) }}
{{- fail "config.webhook.jupyterConfigDir must differ from config.notebook.sessionDir" }}
{{- end }}
{{- if has $c.notebook.sessionFileName (list "protocol" "host" "port" "state") }}
{{- fail "config.notebook.sessionFileName must not be one of protocol, host, port, state (keys of the session Secret)" }}
{{- end }}
{{- with $c.notebook.relinkUrl }}
{{- if not (and (regexMatch "^https?://[!\"$-.0->@-~][!-~]*$" .) (urlParse .).hostname) }}
{{- fail "config.notebook.relinkUrl must be an absolute http(s) URL in printable ASCII (percent-encode anything else), e.g. https://immerse.example.com/" }}
{{- end }}
{{- end }}
{{- with $c.redirect.servicePublicUrl }}
{{- $u := urlParse . }}
{{- if or (ne $u.path (include "omnisci-handoff.basePath" $)) $u.query $u.fragment }}
{{- fail (printf "config.redirect.servicePublicUrl must end in the service's prefix %s (jupyterhub.baseUrl + services/<serviceName>/)" (include "omnisci-handoff.basePath" $)) }}
{{- end }}
{{- end }}
{{- if and $c.hub.identityCheck (not $c.hub.enabled) }}
{{- fail "config.hub.identityCheck needs config.hub.enabled" }}
{{- end }}
{{- if and (eq $c.hub.loginMode "handoff") (not $c.hub.enabled) }}
{{- fail "config.hub.loginMode handoff needs config.hub.enabled" }}
{{- end }}
{{- if and $c.hub.createUsers (not $c.hub.enabled) }}
{{- fail "config.hub.createUsers needs config.hub.enabled" }}
{{- end }}
{{- if $c.heavydb.enabled }}
{{- if not $c.hub.enabled }}
{{- fail "config.heavydb.enabled needs config.hub.enabled" }}
{{- end }}
{{- if not $c.heavydb.url }}
{{- fail "config.heavydb.url is required when config.heavydb.enabled (HeavyDB's HTTP port, e.g. http://heavydb:6278/)" }}
{{- end }}
{{- if not $c.omnisci.host }}
{{- fail "config.omnisci.host is required when config.heavydb.enabled (where the notebook connects)" }}
{{- end }}
{{- end }}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.name is required when serviceAccount.create is false" }}
{{- end }}
{{- end }}
{{- define "omnisci-handoff.validatePorts" -}}
{{- if eq (int .Values.config.listen.port) 0 }}
{{- fail "config.listen.port must be a fixed port in the chart (not 0)" }}
{{- end }}
{{- if eq (int .Values.config.listen.internal.port) 0 }}
{{- fail "config.listen.internal.port must be a fixed port in the chart (not 0)" }}
{{- end }}
{{- if or (eq .Values.config.listen.internal.port .Values.config.listen.port) (and .Values.config.webhook.enabled (eq .Values.config.listen.internal.port .Values.config.webhook.port)) }}
{{- fail "config.listen.internal.port must differ from config.listen.port and config.webhook.port" }}
{{- end }}
{{- if and .Values.config.webhook.enabled (eq (int .Values.config.webhook.port) 0) }}
{{- fail "config.webhook.port must be a fixed port in the chart (not 0)" }}
{{- end }}
{{- end }}
