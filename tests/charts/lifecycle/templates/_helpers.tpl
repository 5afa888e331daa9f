{{- define "lifecycle.labels" -}}
app.kubernetes.io/name: lifecycle
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "lifecycle.pod" -}}
containers:
  - name: app
    image: "{{ .Values.app.image }}:{{ .Values.app.tag }}"
{{- end -}}
