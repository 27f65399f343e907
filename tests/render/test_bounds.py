"""Every render is bounded in time and memory, and stopped when its caller goes away: the real Jsonnet
binding, Helm and kustomize, with limits set short by the settings a deployment would use."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway import tools
from slipway.errors import Cancelled, ManifestError
from slipway.render import RenderContext, render
from tests.chartrepo import write_tree

pytestmark = pytest.mark.timeout(120)  # before the limits existed, these renders never ended

ENDLESS = "local loop(n) = loop(n + 1) tailstrict;\nloop(0)\n"
GREEDY = "std.length(std.range(0, 100000000))\n"
CONFIGMAP = "{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'small'}, data: {a: 'b'}}\n"


def chart(template: str) -> dict[str, str]:
    return {
        "Chart.yaml": "apiVersion: v2\nname: heavy\nversion: 0.1.0\n",
        "values.yaml": "{}\n",
        "templates/cm.yaml": template + "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: heavy\ndata:\n  a: b\n",
    }


# Go templates: a 400 MB list, or a hundred million empty iterations.
HELM_GREEDY = chart("{{- $big := until 50000000 }}{{- if gt (len $big) 0 }}{{ end }}\n")
HELM_ENDLESS = chart("{{- range until 10000 }}{{- range until 10000 }}{{- end }}{{- end }}\n")


class Descendants:
    """Every process below this one seen while the block runs (sampled often), to check none outlives it."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.before: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.seen.update(set(_below(os.getpid())) - self.before)
            time.sleep(0.005)

    def __enter__(self) -> Descendants:
        # What runs already (servers other tests of the session started) is not the block's.
        self.before = set(_below(os.getpid()))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def running(self) -> list[int]:
        """Those still running, after giving init a moment to reap what was killed."""
        deadline = time.monotonic() + 5
        while True:
            left = [pid for pid in self.seen if _alive(pid)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)


def _below(pid: int) -> set[int]:
    out: set[int] = set()
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            out.update(children)
            stack += children
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SLIPWAY_RENDER_TIMEOUT", "2s")
    monkeypatch.setenv("SLIPWAY_RENDER_MEMORY", "256Mi")
    yield


def needs(name: str) -> None:
    if tools.built(name) is None:
        pytest.fail(f"{name} is not built: run `slipway cluster build`")


def test_jsonnet_that_takes_all_memory_stops_at_the_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_RENDER_MEMORY", "256Mi")
    repo = write_tree(tmp_path / "repo", {"apps/big/main.jsonnet": GREEDY})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.monotonic()
    with Descendants() as procs, pytest.raises(ManifestError) as err:
        render(repo / "apps/big", label="apps/big", context=RenderContext(repository_root=repo))
    assert str(err.value) == "apps/big (jsonnet): render exceeded the 256 MiB memory limit (SLIPWAY_RENDER_MEMORY)"
    assert time.monotonic() - started < 30
    # The program's memory was never this process's, and the child it ran in held no more than allowed.
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 64 << 20, f"slipway's own process grew by {grown >> 20} MiB"
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 < (256 + 256) << 20
    assert procs.seen and procs.running() == []


def test_an_endless_jsonnet_loop_stops_at_the_time_limit(tmp_path: Path, limits: None) -> None:
    repo = write_tree(tmp_path / "repo", {"apps/loop/main.jsonnet": ENDLESS, "apps/ok/main.jsonnet": CONFIGMAP})
    started = time.monotonic()
    with Descendants() as procs, pytest.raises(ManifestError) as err:
        render(repo / "apps/loop", label="apps/loop", context=RenderContext(repository_root=repo))
    took = time.monotonic() - started
    assert str(err.value) == "apps/loop (jsonnet): render exceeded the 2s time limit (SLIPWAY_RENDER_TIMEOUT)"
    assert 2 <= took < 10, took
    assert procs.seen and procs.running() == []
    # A program within its limits renders as before.
    (ok,) = render(repo / "apps/ok", label="apps/ok", context=RenderContext(repository_root=repo))
    assert ok.obj["data"] == {"a": "b"} and ok.source == "apps/ok/main.jsonnet"


def test_a_render_its_caller_cancels_leaves_no_process_behind(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "repo", {"apps/loop/main.jsonnet": ENDLESS})
    context = RenderContext(repository_root=repo)
    context.cancel = threading.Event()  # the server's request or the sync went away
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            render(repo / "apps/loop", label="apps/loop", context=context)
        except BaseException as e:
            outcome.append(e)

    with Descendants() as procs:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not procs.seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert procs.seen, "the render started no process"
        time.sleep(0.3)
        context.cancel.set()
        thread.join(5)
    assert not thread.is_alive(), "the render went on after its caller cancelled it"
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome
    assert str(outcome[0]) == "apps/loop (jsonnet): render cancelled"
    assert procs.running() == []


def test_helm_is_bounded_in_memory_and_time(tmp_path: Path, limits: None) -> None:
    needs("helm")
    repo = write_tree(tmp_path / "repo", {f"greedy/{k}": v for k, v in HELM_GREEDY.items()})
    write_tree(repo, {f"endless/{k}": v for k, v in HELM_ENDLESS.items()})
    with Descendants() as procs:
        with pytest.raises(ManifestError) as err:
            render(repo / "greedy", label="greedy", context=RenderContext(repository_root=repo))
        assert str(err.value) == "greedy (helm): render exceeded the 256 MiB memory limit (SLIPWAY_RENDER_MEMORY)"
        started = time.monotonic()
        with pytest.raises(ManifestError) as err:
            render(repo / "endless", label="endless", context=RenderContext(repository_root=repo))
        assert str(err.value) == "endless (helm): render exceeded the 2s time limit (SLIPWAY_RENDER_TIMEOUT)"
        assert time.monotonic() - started < 10
    assert procs.seen and procs.running() == []


def test_kustomize_and_the_helm_it_runs_are_bounded(tmp_path: Path, limits: None) -> None:
    needs("kustomize")
    needs("helm")
    kustomization = "helmCharts:\n- name: heavy\n  releaseName: heavy\n"
    repo = write_tree(tmp_path / "repo", {"apps/kust/kustomization.yaml": kustomization})
    write_tree(repo, {f"apps/kust/charts/heavy/{k}": v for k, v in HELM_ENDLESS.items()})
    started = time.monotonic()
    with Descendants() as procs, pytest.raises(ManifestError) as err:
        render(repo / "apps/kust", label="apps/kust", context=RenderContext(repository_root=repo))
    assert str(err.value) == "apps/kust (kustomize): render exceeded the 2s time limit (SLIPWAY_RENDER_TIMEOUT)"
    assert time.monotonic() - started < 10
    assert len(procs.seen) >= 2  # kustomize, and the helm it ran: both gone
    assert procs.running() == []
    (tmp_path / "repo/apps/kust/charts/heavy/templates/cm.yaml").write_text(HELM_GREEDY["templates/cm.yaml"])
    with pytest.raises(ManifestError) as err:
        render(repo / "apps/kust", label="apps/kust", context=RenderContext(repository_root=repo))
    assert str(err.value) == "apps/kust (kustomize): render exceeded the 256 MiB memory limit (SLIPWAY_RENDER_MEMORY)"


def test_the_limits_are_checked_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from slipway import settings
    from slipway.errors import ConfigError

    monkeypatch.setenv("SLIPWAY_RENDER_TIMEOUT", "1m30s")
    monkeypatch.setenv("SLIPWAY_RENDER_MEMORY", "512Mi")
    assert (settings.render_timeout(), settings.render_memory()) == (90.0, 512 << 20)
    monkeypatch.delenv("SLIPWAY_RENDER_TIMEOUT")
    monkeypatch.delenv("SLIPWAY_RENDER_MEMORY")
    assert (settings.render_timeout(), settings.render_memory()) == (60.0, 1 << 30)
    for name, bad in (("SLIPWAY_RENDER_TIMEOUT", "soon"), ("SLIPWAY_RENDER_MEMORY", "lots"),
                      ("SLIPWAY_RENDER_MEMORY", "1Mi")):  # fmt: skip
        monkeypatch.setenv(name, bad)
        with pytest.raises(ConfigError, match=name):
            render(tmp_path, context=RenderContext())
        monkeypatch.delenv(name)


def test_a_render_dies_with_slipway_even_when_slipway_is_killed(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    repo = write_tree(tmp_path / "repo", {"apps/loop/main.jsonnet": ENDLESS})
    program = (
        "import sys\nfrom pathlib import Path\nfrom slipway.render import RenderContext, render\n"
        "repo = Path(sys.argv[1])\n"
        "render(repo / 'apps/loop', label='apps/loop', context=RenderContext(repository_root=repo))\n"
    )
    slipway = subprocess.Popen([sys.executable, "-c", program, str(repo)], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (children := _below(slipway.pid)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert children, "the render started no process"
        slipway.send_signal(signal.SIGKILL)  # no handler, no exit hook: only the kernel can clean up
        slipway.wait(5)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [pid for pid in children if _alive(pid)], "the render outlived slipway"
    finally:
        slipway.kill()
        slipway.wait(5)
