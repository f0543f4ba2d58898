{{/* The settings file: fixed keys (listening address, certificate paths), then .Values.config. */}}
{{- define "toolforge.config" -}}
{{- $fixed := dict
  "host" "0.0.0.0"
  "port" .Values.port
  "tls_cert_file" "/etc/toolforge/tls/tls.crt"
  "tls_key_file" "/etc/toolforge/tls/tls.key"
  "backend_ca_file" "/etc/toolforge/config/backend-ca.crt"
-}}
{{- toYaml (mustMergeOverwrite $fixed .Values.config) -}}
{{- end -}}
{{- define "toolforge.probePath" -}}/v1/healthz{{- end -}}
{{- define "toolforge.probePort" -}}https{{- end -}}
{{- define "toolforge.probeScheme" -}}HTTPS{{- end -}}
{{- define "toolforge.extraVolumes" -}}{{- end -}}
{{- define "toolforge.extraVolumeMounts" -}}{{- end -}}
{{- define "toolforge.extraPorts" -}}{{- end -}}
