"""Kustomize: a directory holding a ``kustomization.yaml`` is rendered with ``kustomize build``.

Overlays refer to bases elsewhere in the repository, so this renderer asks for the whole
checkout. Helm charts a kustomization names under ``helmCharts:`` are inflated by the same Helm
binary slipway's own Helm renderer uses; kustomize gives Helm directories of its own, and slipway
keeps the user's Helm settings and kubeconfig out of its environment. What the build would fetch
from the network is refused first (:mod:`.kustomize_remote`), and the build is bounded in time
and memory like every render (:mod:`.bounded`).

Defence in depth: unless remote content is allowed, the build runs in a network namespace of its
own (``unshare --net``, with ``--map-root-user`` when slipway is not root), so a fetch the static
check missed finds no network. Whether the machine allows that is found once, by trying it; where
it does not (no ``unshare``, or a container without the privilege), the static check alone guards.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from pathlib import Path

from .. import tools
from ..errors import BuildError, ManifestError
from . import bounded
from .base import Manifest, RenderContext, objects_from, parse_yaml
from .charts import repository_allowed
from .kustomize_remote import KUSTOMIZATION_FILES, check

log = logging.getLogger(__name__)


def has_kustomization(directory: Path) -> bool:
    return any((directory / name).is_file() for name in KUSTOMIZATION_FILES)


def _uses_helm(directory: Path) -> bool:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            try:
                return "helmCharts" in path.read_text(errors="replace")
            except OSError:
                return False
    return False


@functools.cache
def offline_prefix() -> tuple[str, ...]:
    """The argv prefix that runs a command without a network, or ``()`` when this machine cannot."""
    unshare = shutil.which("unshare")
    tries = [["--net"], ["--net", "--map-root-user"]] if os.geteuid() == 0 else [["--net", "--map-root-user"]]
    for flags in tries if unshare else []:
        prefix = (unshare or "", *flags)
        try:
            proc = bounded.run([*prefix, "true"], where="network namespace probe",
                               limits=bounded.Limits(10.0, 256 << 20), deadline=time.monotonic() + 10)  # fmt: skip
        except (ManifestError, OSError):
            continue
        if proc.returncode == 0:
            return prefix
    log.warning("kustomize: this machine cannot run it without a network (unshare --net); only the static "
                "check of remote resources guards builds")  # fmt: skip
    return ()


class Kustomize:
    name = "kustomize"

    def claims(self, directory: Path, context: RenderContext) -> bool:
        return has_kustomization(directory)

    def needs_repository(self, directory: Path, context: RenderContext) -> bool:
        return True

    def render(self, directory: Path, display: str, context: RenderContext) -> list[Manifest]:
        where = f"{display} (kustomize)"
        charts: list[str] = []  # allowed chart repositories the build's Helm pulls from

        def chart_allowed(url: str) -> bool:
            allowed = repository_allowed(url, context.chart_repository_allowed)
            charts.extend([url] if allowed else [])
            return allowed

        check(directory, context.repository_root or directory, where, allow_remote=context.allow_remote,
              chart_allowed=chart_allowed)  # fmt: skip
        # Without a network unless remote content is allowed, or Helm must pull charts from allowed
        # chart repositories (then the static check and the repository rule alone guard the build).
        offline = not context.allow_remote and not charts
        argv = [*(offline_prefix() if offline else ()), tools.find("kustomize"), "build", "."]
        if _uses_helm(directory):
            try:
                helm = tools.find("helm")
            except BuildError as e:
                raise ManifestError(f"{where}: uses helmCharts, and {e.message}") from None
            argv += ["--enable-helm", "--helm-command", helm]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_") and k != "KUBECONFIG"}
        env["KUBECONFIG"] = os.devnull  # an empty kubeconfig: Helm has no cluster to reach
        limits, deadline = context.bounds()
        proc = bounded.run(argv, where=where, limits=limits, deadline=deadline, cancel=context.cancel,
                           cwd=directory, env=env)  # fmt: skip
        if proc.returncode != 0:
            message = " ".join(line.strip() for line in proc.stderr.strip().splitlines()[-3:])
            raise ManifestError(f"{where}: kustomize build failed: {message}")
        return objects_from(parse_yaml(proc.stdout.decode("utf-8", "replace"), where), where)
