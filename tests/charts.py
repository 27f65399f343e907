"""Helm charts as file maps, shared by the render and cluster tests.

``web_chart(prefix, dependency_repo)`` is an application chart under ``<prefix>/`` whose
ConfigMap reports what Helm gave it (values, namespace, capabilities), with a Deployment, a
pre-install hook and a test hook (``hooks=False`` leaves them out); ``labels_chart(version)`` is the chart it depends on, published
to the test chart repository.
"""

from __future__ import annotations

WIDGET_GROUP = "widgets.slipway.test"  # tests that need it served create a CRD in a group of their own


def labels_chart(version: str) -> dict[str, str]:
    return {
        "Chart.yaml": f"apiVersion: v2\nname: labels\nversion: {version}\n",
        "values.yaml": "color: blue\n",
        "templates/cm.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-labels\n"
            "data:\n  version: {{ .Chart.Version | quote }}\n  color: {{ .Values.color | quote }}\n"
        ),
    }


def web_chart(
    prefix: str,
    dependency_repo: str | None = None,
    group: str = WIDGET_GROUP,
    crd_group: str = "crds.slipway.test",
    hooks: bool = True,
) -> dict[str, str]:
    """The web chart; ``hooks=False`` leaves out its hook objects (for syncs: hooks are the sync stage's business)."""
    deps = ""
    if dependency_repo is not None:
        deps = f"dependencies:\n- name: labels\n  version: ^1.0.0\n  repository: {dependency_repo}\n"
    labels = (
        '    helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}\n'
        "    app.kubernetes.io/name: web\n"
        "    app.kubernetes.io/instance: {{ .Release.Name }}\n"
        "    app.kubernetes.io/managed-by: {{ .Release.Service }}\n"
    )
    files = {
        f"{prefix}/Chart.yaml": f"apiVersion: v2\nname: web\nversion: 0.1.0\n{deps}",
        f"{prefix}/values.yaml": "greeting: hello\nreplicas: 1\ncolor: red\n",
        f"{prefix}/values-prod.yaml": "greeting: prod\nreplicas: 2\n",
        f"{prefix}/templates/config.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n  labels:\n"
            + labels
            + "data:\n"
            "  greeting: {{ .Values.greeting | quote }}\n"
            "  replicas: {{ .Values.replicas | quote }}\n"
            "  color: {{ .Values.color | quote }}\n"
            "  namespace: {{ .Release.Namespace | quote }}\n"
            "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
            f'  widget-kind: {{{{ .Capabilities.APIVersions.Has "{group}/v1/Widget" | quote }}}}\n'
            f'  widget-version: {{{{ .Capabilities.APIVersions.Has "{group}/v1" | quote }}}}\n'
        ),
        f"{prefix}/templates/deploy.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  labels:\n"
            + labels
            + "spec:\n  replicas: {{ .Values.replicas }}\n"
            "  selector:\n    matchLabels:\n      app.kubernetes.io/instance: {{ .Release.Name }}\n"
            "  template:\n    metadata:\n      labels:\n        app.kubernetes.io/instance: {{ .Release.Name }}\n"
            "    spec:\n      containers:\n      - name: web\n        image: registry.invalid/web:1\n"
        ),
        f"{prefix}/templates/hooks.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: {{ .Release.Name }}-migrate-\n"
            '  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n    helm.sh/hook-weight: "-1"\n'
            "---\n"
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n"
            "  annotations:\n    helm.sh/hook: test\n"
            "spec:\n  restartPolicy: Never\n  containers:\n  - name: t\n    image: registry.invalid/t:1\n"
        ),
        f"{prefix}/crds/widgets.yaml": (
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            f"metadata:\n  name: gadgets.{crd_group}\n"
            f"spec:\n  group: {crd_group}\n  scope: Namespaced\n"
            "  names: {plural: gadgets, singular: gadget, kind: Gadget}\n"
            "  versions:\n  - name: v1\n    served: true\n    storage: true\n"
            "    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
        ),
    }
    if not hooks:
        del files[f"{prefix}/templates/hooks.yaml"]
    return files
