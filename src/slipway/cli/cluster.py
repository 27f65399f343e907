"""``slipway cluster``: build, start, stop and inspect the local control plane."""

from __future__ import annotations

import click

from ..cluster import build, local
from .output import console, emit_json, info, json_mode


@click.group("cluster")
def cluster() -> None:
    """The local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)."""


@cluster.command("build")
def build_cmd() -> None:
    """Build (once, cached by version) every component the local cluster and slipway need."""
    took = build.build_all(info)
    if json_mode():
        emit_json({name: round(seconds, 1) for name, seconds in took.items()})
        return
    for name, component in build.COMPONENTS.items():
        state = f"built in {took[name]:.0f}s" if took[name] else "cached"
        console.print(f"{name} {component.version}: {state} ({build.bin_dir(component)})", markup=False)


@cluster.command("up")
@click.option("--name", default="default", show_default=True, help="Cluster name.")
def up(name: str) -> None:
    """Start the local cluster, or reuse the one that runs; prints the kubeconfig path."""
    cl = local.up(name, info)
    if json_mode():
        emit_json(local.status(name))
    else:
        click.echo(str(cl.kubeconfig))


@cluster.command("down")
@click.option("--name", default="default", show_default=True)
def down(name: str) -> None:
    """Stop exactly the processes `up` started and remove the cluster's data."""
    stopped = local.down(name, info)
    if json_mode():
        emit_json({"name": name, "stopped": stopped})
    else:
        console.print(f"cluster {name} stopped" if stopped else f"cluster {name} was not running", markup=False)


@cluster.command("status")
@click.option("--name", default="default", show_default=True)
def status(name: str) -> None:
    """What runs, where, and where its logs are."""
    st = local.status(name)
    if json_mode():
        emit_json(st)
        return
    if not st["processes"]:
        console.print(f"cluster {name}: not running", markup=False)
        return
    # Names and paths come from the command line and the environment: printed as they are.
    console.print(f"cluster {name}: {'running' if st['running'] else 'NOT healthy'} at {st['server']}", markup=False)
    console.print(f"kubeconfig: {st['kubeconfig']}", markup=False)
    for p in st["processes"]:
        state = "running" if p["alive"] else "stopped"
        console.print(f"  {p['name']:<24} pid {p['pid']:<8} {state:<8} log: {p['log']}", markup=False)


@cluster.command("kubeconfig")
@click.option("--name", default="default", show_default=True)
def kubeconfig(name: str) -> None:
    """Print the admin kubeconfig path (export KUBECONFIG=$(slipway cluster kubeconfig))."""
    click.echo(str(local.cluster_root(name) / "admin.kubeconfig"))
