{{/* The settings file: listening addresses, workers, certificate paths and routes, then .Values.config. */}}
{{- define "toolforge.config" -}}
{{- $clientCAs := list -}}
{{- range $name, $pem := .Values.caBundles -}}
{{- if and $pem (ne $name "backend-ca") -}}
{{- $clientCAs = append $clientCAs (printf "/etc/toolforge/config/%s.crt" $name) -}}
{{- end -}}
{{- end -}}
{{- $fixed := dict
  "host" "0.0.0.0"
  "port" .Values.port
  "health_port" .Values.healthPort
  "workers" .Values.workers
  "tls_cert_file" "/etc/toolforge/tls/tls.crt"
  "tls_key_file" "/etc/toolforge/tls/tls.key"
  "client_ca_files" $clientCAs
  "backend_client_cert_file" "/etc/toolforge/backend-client/tls.crt"
  "backend_client_key_file" "/etc/toolforge/backend-client/tls.key"
  "backend_ca_file" "/etc/toolforge/config/backend-ca.crt"
  "routes" .Values.routes
-}}
{{- toYaml (mustMergeOverwrite $fixed .Values.config) -}}
{{- end -}}
{{- define "toolforge.probePath" -}}/healthz{{- end -}}
{{- define "toolforge.probePort" -}}health{{- end -}}
{{- define "toolforge.probeScheme" -}}HTTP{{- end -}}
{{- define "toolforge.extraVolumes" -}}
- name: backend-client
  secret:
    secretName: {{ .Values.tls.backendClientSecretName }}
{{- end -}}
{{- define "toolforge.extraVolumeMounts" -}}
- {name: backend-client, mountPath: /etc/toolforge/backend-client, readOnly: true}
{{- end -}}
{{- define "toolforge.extraPorts" -}}
- {name: health, containerPort: {{ .Values.healthPort }}, protocol: TCP}
{{- end -}}
