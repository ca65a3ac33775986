{{/*
Named templates of the Breakwater chart.

The "breakwater.sidecar.*" templates add Breakwater to any pod, so other charts can include
them in their own workloads (README.md shows how). They take a dict:
  root    the including chart's top-level context ($), for .Release and .Capabilities
  values  Breakwater's values: .Values in this chart, .Values.breakwater in a parent chart
          that lists this chart as a dependency
Names built from values alone (never from .Chart) come out the same in either place, so the
sidecar finds the ConfigMap this chart renders.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "breakwater.name" -}}
{{- default "breakwater" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: RELEASE-breakwater, or RELEASE when it already
contains the name; fullnameOverride replaces it. Kubernetes names stop at 63 characters.
*/}}
{{- define "breakwater.fullname" -}}
{{- include "breakwater.sidecar.fullname" (dict "root" . "values" .Values) }}
{{- end }}

{{- define "breakwater.sidecar.fullname" -}}
{{- if .values.fullnameOverride }}
{{- .values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "breakwater" .values.nameOverride }}
{{- if contains $name .root.Release.Name }}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The chart label value: name-version. */}}
{{- define "breakwater.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "breakwater.labels" -}}
helm.sh/chart: {{ include "breakwater.chart" . }}
{{ include "breakwater.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "breakwater.selectorLabels" -}}
app.kubernetes.io/name: {{ include "breakwater.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The service account the pods run as. */}}
{{- define "breakwater.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "breakwater.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap that holds breakwater.yaml. */}}
{{- define "breakwater.sidecar.configMapName" -}}
{{- include "breakwater.sidecar.fullname" . }}
{{- end }}

{{/*
The port of a listener, read from its address in .values.config ("0.0.0.0:15006" -> 15006),
or the default when the config leaves the listener out. Takes the sidecar dict plus
"listener" (a listener name) and "default".
*/}}
{{- define "breakwater.sidecar.listenerPort" -}}
{{- $port := .default }}
{{- range (.values.config.listeners | default list) }}
{{- if eq .name $.listener }}
{{- $port = regexFind "[0-9]+$" .address }}
{{- end }}
{{- end }}
{{- $port }}
{{- end }}

{{/* The port of the telemetry server (/metrics, /healthz, /readyz). */}}
{{- define "breakwater.sidecar.telemetryPort" -}}
{{- regexFind "[0-9]+$" (dig "telemetry" "address" "0.0.0.0:15020" .values.config) }}
{{- end }}

{{/*
shutdown.drainTimeout in whole seconds, rounded up: "20s" -> 20, "1.5m" -> 90, 2500 (ms) -> 3.
The pod's terminationGracePeriodSeconds must be longer, or kubelet kills Breakwater mid-drain.
*/}}
{{- define "breakwater.sidecar.drainTimeoutSeconds" -}}
{{- $drain := dig "shutdown" "drainTimeout" "20s" .values.config }}
{{- if kindIs "string" $drain }}
{{- $unit := regexFind "(ms|s|m|h)$" $drain }}
{{- $secondsPerUnit := get (dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0) $unit }}
{{- mulf (trimSuffix $unit $drain | float64) $secondsPerUnit | ceil | int }}
{{- else }}
{{- divf $drain 1000 | ceil | int }}
{{- end }}
{{- end }}

{{/*
The Breakwater container. As a native sidecar (sidecar.native, Kubernetes 1.29 and later) it
is an init container with restartPolicy Always: kubelet starts it, and waits for its startup
probe, before the service's containers, and stops it after them, so the service's calls have a
proxy for its whole life. Use "breakwater.sidecar.initContainers" and
"breakwater.sidecar.containers" to place it.
*/}}
{{- define "breakwater.sidecar.container" -}}
{{- $values := .values }}
{{- if and $values.sidecar.native (semverCompare "<1.29.0-0" .root.Capabilities.KubeVersion.Version) }}
{{- fail (printf "sidecar.native needs Kubernetes 1.29 or later (this cluster runs %s): set sidecar.native=false to run Breakwater as a plain container" .root.Capabilities.KubeVersion.Version) }}
{{- end -}}
- name: breakwater
  image: "{{ $values.image.repository }}:{{ $values.image.tag }}"
  imagePullPolicy: {{ $values.image.pullPolicy }}
  {{- if $values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: ["run", "--config", "/etc/breakwater/breakwater.yaml"]
  ports:
    - name: bw-inbound
      containerPort: {{ include "breakwater.sidecar.listenerPort" (dict "root" .root "values" $values "listener" "inbound" "default" "15006") }}
      protocol: TCP
    - name: bw-telemetry
      containerPort: {{ include "breakwater.sidecar.telemetryPort" . }}
      protocol: TCP
  {{- $storeEnv := include "breakwater.sidecar.storeEnv" . | trim }}
  {{- if or $storeEnv $values.sidecar.env }}
  env:
    {{- with $storeEnv }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with $values.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  # /readyz answers 200 once the config is loaded and the listeners are up, and 503 from the
  # moment a drain starts; /healthz answers 200 while the process runs.
  startupProbe:
    httpGet:
      path: /readyz
      port: bw-telemetry
    {{- toYaml $values.sidecar.probes.startup | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: bw-telemetry
    {{- toYaml $values.sidecar.probes.readiness | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: bw-telemetry
    {{- toYaml $values.sidecar.probes.liveness | nindent 4 }}
  resources:
    {{- toYaml $values.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml $values.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    # The whole ConfigMap as a folder, not a subPath: kubelet updates a folder mount in place
    # (a new timestamped folder, then the ..data symlink swapped), which Breakwater watches and
    # reloads without a restart. A subPath mount would never see an update.
    - name: breakwater-config
      mountPath: /etc/breakwater
      readOnly: true
    - name: breakwater-tmp
      mountPath: /tmp
    {{- with include "breakwater.sidecar.sqliteFolder" . }}
    # The folder of the sqlite stores' files (config.stores), on the state volume.
    - name: breakwater-state
      mountPath: {{ . }}
    {{- end }}
{{- end }}

{{/* The sidecar as an item of the pod's initContainers list; nothing when sidecar.native is false. */}}
{{- define "breakwater.sidecar.initContainers" -}}
{{- if .values.sidecar.native }}
{{- include "breakwater.sidecar.container" . }}
{{- end }}
{{- end }}

{{/* The sidecar as an item of the pod's containers list; nothing when sidecar.native is true. */}}
{{- define "breakwater.sidecar.containers" -}}
{{- if not .values.sidecar.native }}
{{- include "breakwater.sidecar.container" . }}
{{- end }}
{{- end }}

{{/*
Items of the pod's volumes list: the config folder, a small writable /tmp, and the state
volume when the config names a sqlite store (stores.sqlite: an existing claim, else an
emptyDir).
*/}}
{{- define "breakwater.sidecar.volumes" -}}
- name: breakwater-config
  configMap:
    name: {{ include "breakwater.sidecar.configMapName" . }}
- name: breakwater-tmp
  emptyDir:
    sizeLimit: 16Mi
{{- if include "breakwater.sidecar.sqliteFolder" . }}
- name: breakwater-state
  {{- if .values.stores.sqlite.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .values.stores.sqlite.existingClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .values.stores.sqlite.sizeLimit }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
The folder that holds the files of the sqlite stores in .values.config.stores, where the state
volume is mounted; empty when the config names no sqlite store. The chart reads each `path`
before Breakwater expands any ${VAR} in it, so it must be a literal absolute path; and since
one volume is mounted, every sqlite file must be in the same folder, of its own: not / (the
read-only image), /tmp (a small scratch space) or /etc/breakwater (the config).
*/}}
{{- define "breakwater.sidecar.sqliteFolder" -}}
{{- $folder := "" }}
{{- $first := "" }}
{{- range $name, $store := (dig "stores" (dict) .values.config) }}
{{- if and (kindIs "map" $store) (eq (toString $store.type) "sqlite") }}
{{- $path := $store.path | default "" | toString }}
{{- if or (not (isAbs $path)) (contains "$" $path) }}
{{- fail (printf "config.stores.%s.path %q: give the sqlite file as a literal absolute path, such as /var/lib/breakwater/state.db, so that the chart can mount a volume at its folder" $name $path) }}
{{- end }}
{{- $dir := dir $path }}
{{- if has $dir (list "/" "/tmp" "/etc/breakwater") }}
{{- fail (printf "config.stores.%s.path %q: put the sqlite file in a folder of its own, such as /var/lib/breakwater/state.db, where the chart mounts the state volume, not in %s" $name $path $dir) }}
{{- end }}
{{- if and $folder (ne $folder $dir) }}
{{- fail (printf "config.stores: the sqlite stores %s and %s keep their files in different folders (%s and %s); the chart mounts one state volume, so put both files in one folder" $first $name $folder $dir) }}
{{- end }}
{{- $folder = $dir }}
{{- $first = $name }}
{{- end }}
{{- end }}
{{- $folder }}
{{- end }}

{{/*
Items of the Breakwater container's env list from stores.redis: the Redis URL and password
from an existing Secret, as BREAKWATER_REDIS_URL and BREAKWATER_REDIS_PASSWORD, which
config.stores names as ${BREAKWATER_REDIS_URL} and ${BREAKWATER_REDIS_PASSWORD}; nothing when
no Secret is named.
*/}}
{{- define "breakwater.sidecar.storeEnv" -}}
{{- $redis := .values.stores.redis }}
{{- if .values.stores.redis.existingSecret }}
{{- if .values.stores.redis.urlKey }}
- name: BREAKWATER_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret }}
      key: {{ .values.stores.redis.urlKey }}
{{- end }}
{{- if .values.stores.redis.passwordKey }}
- name: BREAKWATER_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret }}
      key: {{ .values.stores.redis.passwordKey }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Items of the service container's env list: HTTP_PROXY sends the outbound calls of HTTP clients
that honour it (curl, Go, Python requests, Node with NODE_USE_ENV_PROXY=1) through the outbound
listener; NO_PROXY keeps the pod's own loopback calls direct. https:// calls are not proxied.
*/}}
{{- define "breakwater.sidecar.appEnv" -}}
{{- $proxy := printf "http://127.0.0.1:%s" (include "breakwater.sidecar.listenerPort" (dict "root" .root "values" .values "listener" "outbound" "default" "15001")) -}}
- name: HTTP_PROXY
  value: {{ $proxy | quote }}
- name: http_proxy
  value: {{ $proxy | quote }}
- name: NO_PROXY
  value: "localhost,127.0.0.1,::1"
- name: no_proxy
  value: "localhost,127.0.0.1,::1"
{{- end }}

{{/*
Breakwater's config as the ConfigMap holds it: .values.config, with telemetry.appProbes.app
filled in from the service's httpGet probes (app.readinessProbe, app.livenessProbe,
app.startupProbe) when app.rewriteProbes is on, so that the paths the rewritten probes ask for
("breakwater.sidecar.appProbe") exist. A probe's port is a number or the name "app"
(app.port); its timeoutSeconds (Kubernetes' default: 1) bounds Breakwater's call.
*/}}
{{- define "breakwater.sidecar.config" -}}
{{- $config := deepCopy .values.config }}
{{- if .values.app.rewriteProbes }}
{{- $probes := dict }}
{{- range $kind, $key := dict "readyz" "readinessProbe" "livez" "livenessProbe" "startupz" "startupProbe" }}
{{- $probe := get $.values.app $key | default (dict) }}
{{- with $probe.httpGet }}
{{- if eq (upper (default "HTTP" .scheme)) "HTTPS" }}
{{- fail (printf "app.%s.httpGet.scheme HTTPS: Breakwater calls the service's probe over plain HTTP on loopback; use HTTP, or set app.rewriteProbes=false" $key) }}
{{- end }}
{{- $port := .port }}
{{- if kindIs "string" $port }}
{{- if ne $port "app" }}
{{- fail (printf "app.%s.httpGet.port %q: give the port's number or the name \"app\", so that Breakwater knows where to call the service" $key $port) }}
{{- end }}
{{- $port = $.values.app.port }}
{{- end }}
{{- $_ := set $probes $kind (dict "port" (int $port) "path" (default "/" .path) "timeout" (printf "%ds" (int (default 1 $probe.timeoutSeconds)))) }}
{{- end }}
{{- end }}
{{- if $probes }}
{{- $telemetry := default (dict) $config.telemetry }}
{{- $appProbes := default (dict) $telemetry.appProbes }}
{{- $_ := set $appProbes "app" $probes }}
{{- $_ := set $telemetry "appProbes" $appProbes }}
{{- $_ := set $config "telemetry" $telemetry }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
A probe of the service container. The service listens on 127.0.0.1, where kubelet cannot reach
it, so with app.rewriteProbes an httpGet probe goes to Breakwater's telemetry port instead, at
/app-health/app/KIND, and Breakwater calls the service's own path and port over loopback and
answers with its status (Istio's agent does the same). The probe's timing is kept; other kinds
of probe (exec, tcpSocket, grpc) are left as written. Takes the sidecar dict plus "probe" (as
in a container spec) and "kind" (readyz, livez or startupz).
*/}}
{{- define "breakwater.sidecar.appProbe" -}}
{{- if and .values.app.rewriteProbes .probe.httpGet -}}
httpGet:
  path: /app-health/app/{{ .kind }}
  port: {{ include "breakwater.sidecar.telemetryPort" . }}
{{- with omit .probe "httpGet" }}
{{ toYaml . }}
{{- end }}
{{- else -}}
{{- toYaml .probe }}
{{- end }}
{{- end }}

{{/* Pod annotations that let Prometheus' kubernetes-pods scrape job find /metrics. */}}
{{- define "breakwater.sidecar.podAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ include "breakwater.sidecar.telemetryPort" . | quote }}
prometheus.io/path: /metrics
{{- end }}
