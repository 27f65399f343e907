"""Renderers with the real tools (Helm, kustomize, Jsonnet) and a real chart repository; no cluster."""
