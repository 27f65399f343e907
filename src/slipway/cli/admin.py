"""``slipway install`` and ``slipway migrate``: slipway's own objects in a cluster, and moving a store there."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from ..engine import Engine
from .output import console, emit_json, info, json_mode


@click.command("install")
@click.option("--print", "print_only", is_flag=True, help="Write the manifests to stdout instead of applying them.")
@click.option("--namespace", help="slipway's namespace (default: $SLIPWAY_NAMESPACE, else slipway-system).")
@click.option(
    "--target-namespace",
    "targets",
    multiple=True,
    metavar="NS",
    help="Let slipway deploy into NS (a RoleBinding of slipway-deployer there); repeatable.",
)
@click.option("--cluster-wide", is_flag=True, help="Let slipway deploy anywhere (a ClusterRoleBinding).")
def install(print_only: bool, namespace: str | None, targets: tuple[str, ...], cluster_wide: bool) -> None:
    """Apply slipway's CRDs, namespace and RBAC to the cluster of KUBECONFIG (idempotent).

    A cluster whose slipway CRDs are newer than this slipway's is refused, and nothing changes.
    """
    if print_only:
        docs = Engine.install_manifests(namespace, targets, cluster_wide)
        sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
        return
    done = Engine.install(namespace, targets, cluster_wide)
    if json_mode():
        emit_json({"applied": done})
        return
    for line in done:
        console.print(f"applied {line}", markup=False)
    if not targets and not cluster_wide:
        info("slipway may deploy nowhere yet: give --target-namespace NS (repeatable) or --cluster-wide")


@click.command("migrate")
@click.option("--to", "to", type=click.Choice(["kubernetes"]), required=True, help="The store to copy into.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="SLIPWAY_HOME of the SQLite store (default: $SLIPWAY_HOME).")  # fmt: skip
def migrate(to: str, home: Path | None) -> None:
    """Copy the SQLite store into the cluster (SLIPWAY_NAMESPACE): repositories, workflows, run state,
    inventories, history and executions. Running it again copies only what is missing."""
    counts = Engine.migrate(to, home, say=info)
    if json_mode():
        emit_json(counts)
        return
    console.print(", ".join(f"{n} {what}" for what, n in counts.items()) + " copied or up to date", markup=False)
