"""``slipway cluster``: build, start, stop and inspect the local control plane."""

from __future__ import annotations

import click

from .output import emit_json, info, json_mode, out


@click.group("cluster")
def cluster() -> None:
    """The local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)."""


@cluster.command("build")
def build_cmd() -> None:
    """Build (once, cached by version) every component the local cluster and slipway need."""
    from ..cluster import build

    took = build.build_all(info)
    if json_mode():
        emit_json({name: round(seconds, 1) for name, seconds in took.items()})
        return
    for name, component in build.COMPONENTS.items():
        state = f"built in {took[name]:.0f}s" if took[name] else "cached"
        out(f"{name} {component.version}: {state} ({build.bin_dir(component)})")


@cluster.command("up")
@click.option("--name", default="default", show_default=True, help="Cluster name.")
def up(name: str) -> None:
    """Start the local cluster, or reuse the one that runs; prints the kubeconfig path."""
    from ..cluster import local

    cl = local.up(name, info)
    if json_mode():
        emit_json(local.status(name))
    else:
        click.echo(str(cl.kubeconfig))


@cluster.command("down")
@click.option("--name", default="default", show_default=True, help="Cluster name.")
def down(name: str) -> None:
    """Stop exactly the processes `up` started and remove the cluster's data."""
    from ..cluster import local

    stopped = local.down(name, info)
    if json_mode():
        emit_json({"name": name, "stopped": stopped})
    else:
        out(f"cluster {name} stopped" if stopped else f"cluster {name} was not running")


@cluster.command("status")
@click.option("--name", default="default", show_default=True, help="Cluster name.")
def status(name: str) -> None:
    """What runs, where, and where its logs are."""
    from ..cluster import local

    st = local.status(name)
    if json_mode():
        emit_json(st)
        return
    if not st["processes"]:
        out(f"cluster {name}: not running")
        return
    # Names and paths come from the command line and the environment: printed as they are.
    out(f"cluster {name}: {'running' if st['running'] else 'NOT healthy'} at {st['server']}")
    out(f"kubeconfig: {st['kubeconfig']}")
    for p in st["processes"]:
        state = "running" if p["alive"] else "stopped"
        out(f"  {p['name']:<24} pid {p['pid']:<8} {state:<8} log: {p['log']}")


@cluster.command("kubeconfig")
@click.option("--name", default="default", show_default=True, help="Cluster name.")
def kubeconfig(name: str) -> None:
    """Print the admin kubeconfig path (export KUBECONFIG=$(slipway cluster kubeconfig))."""
    from ..cluster import local

    click.echo(str(local.cluster_root(name) / "admin.kubeconfig"))
