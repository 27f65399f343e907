"""``python -m bench``: run the benchmarks on the local cluster, print the table, write the JSON.

    python -m bench [--n 1000] [--runs 3] [--workflows 1000] [--repos 250] [--only P1,P3]
                    [--shards 6] [--replicas 3] [--out bench/results/latest.json]

P1-P3 run slipway's Engine in this process next to kubectl and the bare loop; P4-P5 run the
controller in a process of its own; P6-P7 run controller replicas on the kubernetes store; P1's
command-line figures and P8 run ``slipway`` itself as a process. Everything runs against the local
cluster (``slipway.cluster.local.up()`` reuses a running one), in fresh namespaces that are deleted
afterwards. See docs/benchmarks.md for what each figure measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from slipway.cluster import local
from slipway.durations import parse_duration
from slipway.kube import Kube, forget_connections

from . import cli_runs, controller_runs, engine_runs, metrics, profiling, replica_runs
from .report import Figure, markdown, summary, table

PHASES = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8")
DEFAULT_OUT = Path("bench/results/latest.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="objects for P1-P3 (default 1000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    ap.add_argument("--workflows", type=int, default=1000, help="P4 workflows, 4 objects each (default 1000)")
    ap.add_argument("--repos", type=int, default=250, help="P4 repositories (default 250)")
    ap.add_argument("--only", default="", help="comma-separated phases to run, e.g. P1,P3 (default: all)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    ap.add_argument("--concurrency", type=int, default=16, help="slipway's and the bare loop's concurrency")
    ap.add_argument(
        "--cli-n", default="500,1000", help="objects of P1's command-line syncs, comma-separated (default 500,1000)"
    )
    ap.add_argument("--poll-interval", default="30s", help="P4 repositories' poll interval (default 30s)")
    ap.add_argument("--controller-concurrency", type=int, default=48, help="P4 controller --concurrency (default 48)")
    ap.add_argument(
        "--idle-seconds",
        type=float,
        default=None,
        help="P4 idle CPU window (default: two poll intervals, at least 20s, so that every repository is checked "
        "about twice in it)",
    )
    ap.add_argument("--latency-samples", type=int, default=3, help="P4 commits per run (default 3)")
    ap.add_argument("--shards", type=int, default=6, help="P6-P7 controller --shards (default 6)")
    ap.add_argument("--replicas", type=int, default=3, help="P6-P7 replicas of the second measure (default 3)")
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="write py-spy profiles of slipway's timed work to DIR (needs py-spy on PATH)",
    )
    ap.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: sample only the thread holding the GIL (Python CPU), not threads waiting on I/O",
    )
    ap.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="FILE",
        help="print the results in FILE (a --out of an earlier run) as a Markdown table, and run nothing",
    )
    args = ap.parse_args(argv)
    if args.profile is not None and profiling.available() is None:
        ap.error("--profile needs py-spy on PATH (pip install py-spy)")
    only = {p.strip().upper() for p in args.only.split(",") if p.strip()}
    unknown = only - set(PHASES)
    if unknown:
        ap.error(f"--only: unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    args.phases = only or set(PHASES)
    try:
        args.cli_sizes = [int(n) for n in args.cli_n.split(",") if n.strip()]
    except ValueError:
        ap.error("--cli-n: expected numbers, e.g. 500,1000")
    if args.runs < 1 or args.n < 4 or args.workflows < 1 or args.repos < 1:
        ap.error("--runs, --workflows and --repos must be at least 1, --n at least 4")
    if args.shards < 1 or args.replicas < 2:
        ap.error("--shards must be at least 1, --replicas at least 2")
    poll = parse_duration(args.poll_interval, key="--poll-interval")
    if args.idle_seconds is None:
        args.idle_seconds = max(20.0, 2 * poll)
    profiling.GIL_ONLY = args.profile_gil
    return args


def say(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    del frame
    raise KeyboardInterrupt(f"signal {signum}")


def slipway_revision() -> str:
    """The commit of the slipway being measured, ``+dirty`` when the work tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def compile_slipway() -> None:
    """Byte-compile slipway as an installed package is: a command-line figure must not include
    compiling the sources (which an environment with PYTHONDONTWRITEBYTECODE would do every run)."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "src" / "slipway"), quiet=1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    compile_slipway()
    info = local.up(log=say)
    kubeconfig = info.kubeconfig
    kube = Kube(kubeconfig)
    tmp = Path(tempfile.mkdtemp(prefix="slipway-bench-"))
    figures: dict[str, Figure] = {}
    phases = args.phases
    controller_needed = bool(phases & {"P4", "P5"})
    replicas_needed = bool(phases & {"P6", "P7"})
    try:
        machine = metrics.machine(kube)
        if phases & {"P1", "P2", "P3"}:
            ep = engine_runs.Params(
                n=args.n,
                runs=args.runs,
                kubeconfig=kubeconfig,
                tmp=tmp,
                concurrency=args.concurrency,
                phases=phases,
                wait_after_last=controller_needed or replicas_needed or bool(phases & {"P1", "P8"}),
                profile=args.profile,
            )
            figs = engine_runs.figures()
            for i in range(args.runs):
                say(f"P1-P3 run {i + 1}/{args.runs} ({args.n} objects)")
                engine_runs.one_run(ep, i, figs, kube, say)
            figures.update(figs)
        if phases & {"P1", "P8"}:
            clp = cli_runs.Params(
                sizes=args.cli_sizes if "P1" in phases else [],
                runs=args.runs,
                kubeconfig=kubeconfig,
                tmp=tmp,
                concurrency=args.concurrency,
                phases=phases & {"P1", "P8"},
            )
            figs = cli_runs.figures(clp)
            for i in range(args.runs):
                say(f"P1/P8 command line, run {i + 1}/{args.runs} (sync of {args.cli_n} objects)")
                cli_runs.one_run(clp, i, figs, kube, say)
            figures.update(figs)
        if controller_needed:
            cp = controller_runs.Params(
                workflows=args.workflows,
                repos=args.repos,
                runs=args.runs,
                kubeconfig=kubeconfig,
                tmp=tmp,
                poll_interval=args.poll_interval,
                concurrency=args.controller_concurrency,
                idle_seconds=args.idle_seconds,
                latency_samples=args.latency_samples,
                profile=args.profile,
                wait_after_last=replicas_needed,
            )
            figs = controller_runs.figures(cp)
            for i in range(args.runs):
                say(f"P4-P5 run {i + 1}/{args.runs} ({args.workflows} workflows over {args.repos} repositories)")
                controller_runs.one_run(cp, i, figs, kube, say)
            figures.update(figs)
        if replicas_needed:
            rp = replica_runs.Params(
                workflows=args.workflows,
                repos=args.repos,
                runs=args.runs,
                kubeconfig=kubeconfig,
                tmp=tmp,
                shards=args.shards,
                replicas=args.replicas,
                poll_interval=args.poll_interval,
                concurrency=args.controller_concurrency,
            )
            figs = replica_runs.figures(rp)
            for i in range(args.runs):
                say(f"P6-P7 run {i + 1}/{args.runs} ({args.workflows} workflows, 1 and {args.replicas} replicas)")
                replica_runs.one_run(rp, i, figs, kube, say)
            figures.update(figs)
    finally:
        kube.close()
        forget_connections()
        shutil.rmtree(tmp, ignore_errors=True)
    selected = {k: f for k, f in figures.items() if k.split(".")[0] in phases}
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "slipway": slipway_revision(),
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "machine": machine,
        "parameters": {
            "n": args.n,
            "runs": args.runs,
            "workflows": args.workflows,
            "repos": args.repos,
            "phases": sorted(phases),
            "concurrency": args.concurrency,
            "cli_n": args.cli_sizes,
            "poll_interval": args.poll_interval,
            "controller_concurrency": args.controller_concurrency,
            "idle_seconds": args.idle_seconds,
            "latency_samples": args.latency_samples,
            "shards": args.shards,
            "replicas": args.replicas,
            "profiled": args.profile is not None,
        },
        "figures": summary(selected),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())["figures"]))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        results = run(args)
    except KeyboardInterrupt:
        say("interrupted; the namespaces made so far were deleted (best effort)")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    m = results["machine"]
    print(
        f"slipway {results['slipway']} bench, {results['date']}: {m['cpu_model']} x {m['cpus']}, {m['memory_gib']} GiB, "
        f"{m['kernel']}, {m['python']}, Kubernetes {m.get('kubernetes', '?')}"
    )
    print(f"parameters: {json.dumps(results['parameters'])}")
    print(table(results["figures"]))
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
