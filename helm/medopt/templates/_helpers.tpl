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

{{/* RawDeployment and its KServe >= 0.17 name Standard: no Knative, so HTTP and gRPC ports and HPA scaling. */}}
{{- define "medopt.raw" -}}
{{- if has .Values.deploy.deploymentMode (list "RawDeployment" "Standard") }}true{{ end -}}
{{- end -}}

{{/* CPU quantity in millicores ("500m", "2", 4, 0.5). */}}
{{- define "medopt.cpuMilli" -}}
{{- $v := toString . -}}
{{- if hasSuffix "m" $v -}}{{ trimSuffix "m" $v | float64 }}{{- else -}}{{ mulf (float64 $v) 1000 }}{{- end -}}
{{- end -}}

{{/* Memory quantity in bytes ("512Mi", "1Gi", "1G", 1073741824). */}}
{{- define "medopt.bytes" -}}
{{- $v := toString . -}}
{{- $unit := regexFind "[A-Za-z]+$" $v -}}
{{- $scale := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 -}}
{{- mulf (float64 (trimSuffix $unit $v)) (get $scale $unit) -}}
{{- end -}}

{{/* Cross-field rules JSON Schema cannot state; the same ones DeployConfig/ServeConfig enforce in Python. */}}
{{- define "medopt.validate" -}}
{{- $d := .Values.deploy -}}
{{- if gt (int $d.minReplicas) (int $d.maxReplicas) -}}
{{- fail (printf "deploy.minReplicas (%v) > deploy.maxReplicas (%v)" $d.minReplicas $d.maxReplicas) -}}
{{- end -}}
{{- if gt (float64 (include "medopt.cpuMilli" $d.cpuRequest)) (float64 (include "medopt.cpuMilli" $d.cpuLimit)) -}}
{{- fail (printf "deploy.cpuRequest (%v) > deploy.cpuLimit (%v)" $d.cpuRequest $d.cpuLimit) -}}
{{- end -}}
{{- if gt (float64 (include "medopt.bytes" $d.memoryRequest)) (float64 (include "medopt.bytes" $d.memoryLimit)) -}}
{{- fail (printf "deploy.memoryRequest (%v) > deploy.memoryLimit (%v)" $d.memoryRequest $d.memoryLimit) -}}
{{- end -}}
{{- if eq (int .Values.serve.httpPort) (int .Values.serve.grpcPort) -}}
{{- fail (printf "serve.httpPort and serve.grpcPort must differ (both %v)" .Values.serve.httpPort) -}}
{{- end -}}
{{- if and (include "medopt.raw" .) (not (has $d.scaleMetric (list "cpu" "memory"))) -}}
{{- fail (printf "deploy.scaleMetric %s needs deploy.deploymentMode Serverless or Knative (the HPA scales on cpu/memory)" $d.scaleMetric) -}}
{{- end -}}
{{- if and (include "medopt.raw" .) (not (kindIs "invalid" $d.canaryTrafficPercent)) -}}
{{- fail "deploy.canaryTrafficPercent needs deploy.deploymentMode Serverless or Knative (Knative revisions)" -}}
{{- end -}}
{{- end -}}

{{/* Startup (model load: up to 5 min), liveness (process answers) and readiness (model loaded) probes. */}}
{{- define "medopt.probes" -}}
startupProbe:
  httpGet:
    path: /v2/health/live
    port: {{ .Values.serve.httpPort }}
  periodSeconds: 2
  failureThreshold: 150
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: {{ .Values.serve.httpPort }}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /v2/health/ready
    port: {{ .Values.serve.httpPort }}
  periodSeconds: 5
{{- end -}}
