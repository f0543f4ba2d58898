{{/*
Shared named templates of the Toolforge platform API charts. Every template takes the chart's
root context (`.`). Each service chart's values follow one shape (see any service chart's
values.yaml): image, replicaCount, port, resources, podDisruptionBudget, topologySpread,
tls, caBundles, config, networkPolicy.
*/}}

{{- define "toolforge-common.name" -}}
{{- .Chart.Name -}}
{{- end -}}

{{- define "toolforge-common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "toolforge-common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "toolforge-common.labels" -}}
{{ include "toolforge-common.selectorLabels" . }}
app.kubernetes.io/part-of: toolforge
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The image reference; a missing tag is an error, not a silent "latest". */}}
{{- define "toolforge-common.image" -}}
{{- $tag := required "image.tag is required (make deploy sets it to the image's content key)" .Values.image.tag -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* Name of the Secret holding this service's TLS pair (tls.crt, tls.key). */}}
{{- define "toolforge-common.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "toolforge-common.name" .)) -}}
{{- end -}}

{{/*
A cert-manager Certificate for one key pair (production mode only).
Arguments: dict "root" . "name" <Certificate and Secret name> "spec" <extra spec keys>.
*/}}
{{- define "toolforge-common.certificate" -}}
{{- $root := .root -}}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "toolforge-common.labels" $root | nindent 4 }}
spec:
  secretName: {{ .name }}
  duration: {{ $root.Values.tls.certManager.duration }}
  renewBefore: {{ $root.Values.tls.certManager.renewBefore }}
  privateKey:
    algorithm: ECDSA
    size: 256
    rotationPolicy: Always
  issuerRef:
    group: cert-manager.io
    kind: {{ .issuer.kind }}
    name: {{ required "an issuer name is required in certManager mode" .issuer.name }}
  {{- toYaml .spec | nindent 2 }}
{{- end -}}

{{/* ConfigMap with the service's settings file (config.yaml) and the CA bundles. */}}
{{- define "toolforge-common.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "toolforge-common.name" . }}-config
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "toolforge-common.labels" . | nindent 4 }}
data:
  config.yaml: |
    {{- include "toolforge.config" . | nindent 4 }}
  {{- range $name, $pem := .Values.caBundles }}
  {{- if $pem }}
  {{ $name }}.crt: |
    {{- $pem | nindent 4 }}
  {{- end }}
  {{- end }}
{{- end -}}

{{/* ServiceAccount; the token is mounted only where the service talks to the apiserver. */}}
{{- define "toolforge-common.serviceaccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "toolforge-common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "toolforge-common.labels" . | nindent 4 }}
automountServiceAccountToken: false
{{- end -}}

{{/*
The Deployment. The service-specific parts come from the chart's own named templates:
"toolforge.extraVolumes", "toolforge.extraVolumeMounts" and "toolforge.extraPorts" (may be
empty), "toolforge.probePath", "toolforge.probePort" and "toolforge.probeScheme". Settings are read from
/etc/toolforge/config/config.yaml; the TLS pair is in /etc/toolforge/tls.
*/}}
{{- define "toolforge-common.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "toolforge-common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "toolforge-common.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  revisionHistoryLimit: 3
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      {{- include "toolforge-common.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "toolforge-common.labels" . | nindent 8 }}
      annotations:
        # Roll the pods when the settings or CA bundles change.
        checksum/config: {{ include "toolforge-common.configmap" . | sha256sum }}
    spec:
      serviceAccountName: {{ include "toolforge-common.name" . }}
      automountServiceAccountToken: {{ .Values.serviceAccountToken }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      {{- with .Values.topologySpread }}
      topologySpreadConstraints:
        {{- range . }}
        - maxSkew: {{ .maxSkew }}
          topologyKey: {{ .topologyKey }}
          whenUnsatisfiable: {{ .whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "toolforge-common.selectorLabels" $ | nindent 14 }}
        {{- end }}
      {{- end }}
      containers:
        - name: {{ include "toolforge-common.name" . }}
          image: {{ include "toolforge-common.image" . }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: ["--config", "/etc/toolforge/config/config.yaml"]
          {{- with .Values.env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: https
              containerPort: {{ .Values.port }}
              protocol: TCP
            {{- include "toolforge.extraPorts" . | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          readinessProbe:
            httpGet:
              path: {{ include "toolforge.probePath" . }}
              port: {{ include "toolforge.probePort" . }}
              scheme: {{ include "toolforge.probeScheme" . }}
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          livenessProbe:
            httpGet:
              path: {{ include "toolforge.probePath" . }}
              port: {{ include "toolforge.probePort" . }}
              scheme: {{ include "toolforge.probeScheme" . }}
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          volumeMounts:
            - {name: config, mountPath: /etc/toolforge/config, readOnly: true}
            - {name: tls, mountPath: /etc/toolforge/tls, readOnly: true}
            - {name: tmp, mountPath: /tmp}
            {{- include "toolforge.extraVolumeMounts" . | nindent 12 }}
      volumes:
        - name: config
          configMap:
            name: {{ include "toolforge-common.name" . }}-config
        - name: tls
          secret:
            secretName: {{ include "toolforge-common.tlsSecretName" . }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- include "toolforge.extraVolumes" . | nindent 8 }}
{{- end -}}

{{- define "toolforge-common.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "toolforge-common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "toolforge-common.labels" . | nindent 4 }}
spec:
  {{- toYaml .Values.podDisruptionBudget | nindent 2 }}
  selector:
    matchLabels:
      {{- include "toolforge-common.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/*
NetworkPolicy of a backend: ingress only from the gateway's pods, on the service port.
Egress: DNS and the given extra rules (.Values.networkPolicy.egress).
*/}}
{{- define "toolforge-common.backendNetworkPolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "toolforge-common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "toolforge-common.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "toolforge-common.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              {{- toYaml .Values.networkPolicy.gatewayPodLabels | nindent 14 }}
      ports:
        - {protocol: TCP, port: {{ .Values.port }}}
  egress:
    - ports:
        - {protocol: UDP, port: 53}
        - {protocol: TCP, port: 53}
    {{- with .Values.networkPolicy.egress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
