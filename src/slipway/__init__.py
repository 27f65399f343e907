"""slipway: GitOps for Kubernetes — render Git, diff against the cluster, apply, check health, roll back."""

__version__ = "0.1.0"
