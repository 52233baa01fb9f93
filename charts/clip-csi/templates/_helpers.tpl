{{/* Names, labels and the pieces shared by the node plugin and the controller. */}}

{{- define "clip-csi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "clip-csi.fullname" -}}
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

{{- define "clip-csi.labels" -}}
app.kubernetes.io/name: {{ include "clip-csi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "clip-csi.baseLabels" . }}
{{- end -}}

{{/* Labels without the selector's name and instance (pod templates add the selector labels). */}}
{{- define "clip-csi.baseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clip-csi
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include with (list . "node"). */}}
{{- define "clip-csi.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "clip-csi.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* kubeletDir without a trailing slash: every kubelet path is built from it. */}}
{{- define "clip-csi.kubeletDir" -}}
{{- trimSuffix "/" .Values.kubeletDir -}}
{{- end -}}

{{- define "clip-csi.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* "true" when the controller runs: it needs the bucket, where it meets the nodes. */}}
{{- define "clip-csi.controllerEnabled" -}}
{{- if and .Values.controller.enabled .Values.s3.bucket -}}true{{- end -}}
{{- end -}}

{{- define "clip-csi.nodeServiceAccount" -}}
{{- default (printf "%s-node" (include "clip-csi.fullname" .)) .Values.node.serviceAccount.name -}}
{{- end -}}

{{- define "clip-csi.controllerServiceAccount" -}}
{{- default (printf "%s-controller" (include "clip-csi.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- end -}}

{{/* "true" when prometheus-operator objects are rendered. */}}
{{- define "clip-csi.operatorObjects" -}}
{{- if or .Values.monitoring.forceOperatorObjects (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}

{{/* The job label of each component's metrics, as alerts and the dashboard select them. */}}
{{- define "clip-csi.nodeJob" -}}
{{- printf "%s-node" (include "clip-csi.fullname" .) -}}
{{- end -}}
{{- define "clip-csi.controllerJob" -}}
{{- printf "%s-controller" (include "clip-csi.fullname" .) -}}
{{- end -}}

{{/* S3 and registry flags, the same for `clip node` and `clip controller`. */}}
{{- define "clip-csi.s3Args" -}}
{{- with .Values.s3 }}
{{- if .bucket }}
- --s3-bucket={{ .bucket }}
- --s3-prefix={{ .prefix }}
{{- with .region }}
- --s3-region={{ . }}
{{- end }}
{{- with .endpoint }}
- --s3-endpoint={{ . }}
{{- end }}
{{- if .pathStyle }}
- --s3-path-style
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "clip-csi.registryArgs" -}}
{{- range .Values.registries.insecure }}
- --insecure-registry={{ . }}
{{- end }}
{{- if .Values.registries.caBundle.configMapName }}
{{- range .Values.registries.caBundle.keys }}
- --ca-cert=/etc/clip-csi/registry-ca/{{ . }}
{{- end }}
{{- end }}
{{- if .Values.registries.dockerConfigSecret }}
- --docker-config=/etc/clip-csi/docker/config.json
{{- end }}
{{- end -}}

{{/* S3 credentials from an existing Secret; none means the AWS chain (IRSA, Pod Identity, ...). */}}
{{- define "clip-csi.s3Env" -}}
{{- with .Values.s3.credentials }}
{{- if .secretName }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretAccessKeyKey }}
{{- if .sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .sessionTokenKey }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "clip-csi.registryVolumeMounts" -}}
{{- if .Values.registries.caBundle.configMapName }}
- name: registry-ca
  mountPath: /etc/clip-csi/registry-ca
  readOnly: true
{{- end }}
{{- if .Values.registries.dockerConfigSecret }}
- name: docker-config
  mountPath: /etc/clip-csi/docker
  readOnly: true
{{- end }}
{{- end -}}

{{- define "clip-csi.registryVolumes" -}}
{{- if .Values.registries.caBundle.configMapName }}
- name: registry-ca
  configMap:
    name: {{ .Values.registries.caBundle.configMapName }}
{{- end }}
{{- if .Values.registries.dockerConfigSecret }}
- name: docker-config
  secret:
    secretName: {{ .Values.registries.dockerConfigSecret }}
    items:
      - key: .dockerconfigjson
        path: config.json
{{- end }}
{{- end -}}

{{- define "clip-csi.sidecarImage" -}}
{{- printf "%s:%s" .image.repository .image.tag -}}
{{- end -}}
