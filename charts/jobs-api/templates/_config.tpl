{{/* The settings file: fixed keys (listening address, certificate paths), then .Values.config. */}}
{{- define "toolforge.config" -}}
{{- $fixed := dict
  "host" "0.0.0.0"
  "port" .Values.port
  "tls_cert_file" "/etc/toolforge/tls/tls.crt"
  "tls_key_file" "/etc/toolforge/tls/tls.key"
  "backend_ca_file" "/etc/toolforge/config/backend-ca.crt"
-}}
{{- $config := mustMergeOverwrite $fixed .Values.config -}}
{{- if .Values.imageConfig -}}
{{- $_ := set $config "image_config_namespace" .Release.Namespace -}}
{{- $_ := set $config "image_config_name" "jobs-api-images" -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
{{/* Namespace and name of the image-list ConfigMap the API reads: "<namespace>/<name>". */}}
{{- define "toolforge.imageConfigRef" -}}
{{- if .Values.imageConfig -}}
{{- printf "%s/jobs-api-images" .Release.Namespace -}}
{{- else -}}
{{- printf "%s/%s" .Values.config.image_config_namespace .Values.config.image_config_name -}}
{{- end -}}
{{- end -}}
{{- define "toolforge.probePath" -}}/v1/healthz{{- end -}}
{{- define "toolforge.probePort" -}}https{{- end -}}
{{- define "toolforge.probeScheme" -}}HTTPS{{- end -}}
{{- define "toolforge.extraVolumes" -}}{{- end -}}
{{- define "toolforge.extraVolumeMounts" -}}{{- end -}}
{{- define "toolforge.extraPorts" -}}{{- end -}}
