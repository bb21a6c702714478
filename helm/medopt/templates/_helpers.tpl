{{- define "medopt.labels" -}}
app.kubernetes.io/name: medopt
app.kubernetes.io/part-of: medopt
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "medopt.resources" -}}
requests:
  cpu: {{ .Values.deploy.cpuRequest | quote }}
  memory: {{ .Values.deploy.memoryRequest | quote }}
  {{- if gt (int .Values.deploy.gpus) 0 }}
  nvidia.com/gpu: {{ .Values.deploy.gpus | quote }}
  {{- end }}
limits:
  cpu: {{ .Values.deploy.cpuLimit | quote }}
  memory: {{ .Values.deploy.memoryLimit | quote }}
  {{- if gt (int .Values.deploy.gpus) 0 }}
  nvidia.com/gpu: {{ .Values.deploy.gpus | quote }}
  {{- end }}
{{- end -}}

{{- define "medopt.securityContext" -}}
runAsNonRoot: true
runAsUser: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
