"""R4 bad input: every case of tests/reliability/corpus/ as a real user meets it, through the CLI.

Each case is a directory: ``case.yaml`` (what it is, what is expected, the words the error must
say) and ``repo/``, the repository's files, committed as they are (binary and Latin-1 ones too);
``generate`` makes what is too big or too odd to commit (a 10 MB file, a symlink). A case expected
to fail must fail with exit code 2, one clear message naming its file, document and object, no
traceback, nothing applied or changed in the cluster, and the failure on the record. A case
expected to work must sync.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.kube import Kube
from tests.gitservers import Symlink, commit, make_repo, origin_of, push

from .conftest import Cli, size

CORPUS = Path(__file__).with_name("corpus")
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "case.yaml").is_file())
RESULTS: dict[str, bool] = {}
KINDS = [("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("apps/v1", "Deployment"), ("batch/v1", "Job")]


def tree(root: Path, namespace: str) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            raw = p.read_bytes()
            # {ns} names cluster-scoped objects after the test's namespace, so runs never collide
            files[p.relative_to(root).as_posix()] = raw.replace(b"{ns}", namespace.encode())
    return files


def generated(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g in spec.get("generate") or []:
        if "symlink" in g:
            out[g["symlink"]] = Symlink(g["to"])
        elif "configmap_mb" in g:
            blob = "x" * (1024 * 1024)
            data = "".join(f"  k{i}: {blob}\n" for i in range(g["configmap_mb"]))
            out[g["file"]] = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n{data}"
        elif "empty_documents" in g:
            out[g["file"]] = "---\n" * g["empty_documents"]
        elif "nested" in g:
            depth = g["nested"]
            out[g["file"]] = (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata: " + "[" * depth + "]" * depth
            )
    return out


def snapshot(kube: Kube, namespace: str) -> dict[str, str]:
    """Every object the case's workflow applied, with its resourceVersion: 'nothing changed' is comparable."""
    out = {}
    for api_version, kind in KINDS:
        info = kube.discovery.lookup(api_version, kind)
        for obj in kube.list(info, namespace, label_selector="slipway.dev/workflow=w"):
            out[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    return out


@pytest.mark.parametrize("name", CASES[: size(len(CASES), len(CASES))])
def test_bad_input(name: str, cli: Cli, kube: Kube, namespace: str, tmp_path: Path) -> None:
    case = CORPUS / name
    spec = yaml.safe_load((case / "case.yaml").read_text())
    files = {**tree(case / "repo", namespace), **generated(spec)}
    stage = spec.get("stage", "sync")
    expect_ok = spec["expect"] == "ok"
    outputs: list[str] = []

    if stage == "lua":
        work = tmp_path / "scripts"
        work.mkdir()
        for rel, raw in files.items():
            (work / rel).write_bytes(raw)
        make_repo(tmp_path / "apps", {"k8s/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"})
        assert cli("repo", "add", str(origin_of(tmp_path / "apps")), "--id", "r").returncode == 0
        r = Cli(cli.env, cli.home, work)("run", spec["script"])
        outputs.append(r.stdout + r.stderr)
        check(name, spec, r.returncode, outputs, expect_ok)
        return

    before = spec.get("before")
    work = make_repo(tmp_path / "repo", before if before else files)
    r = cli("repo", "add", str(origin_of(work)), "--id", "r")
    assert r.returncode == 0, r.stderr
    create = ["workflow", "create", "--id", "w", "--repository", "r", "--path", spec.get("path", "k8s"),
              "--namespace", namespace, "--prune", *spec.get("args", [])]  # fmt: skip
    r = cli(*create)
    outputs.append(r.stdout + r.stderr)
    if stage == "create":
        check(name, spec, r.returncode, outputs, expect_ok)
        assert cli("workflow", "show", "w").returncode == 2  # nothing was created
        return
    assert r.returncode == 0, r.stderr
    if before:
        assert cli("sync", "w", "--yes").returncode == 0
        shutil.rmtree(work / "k8s", ignore_errors=True)
        commit(work, files)
        push(work)
    was = snapshot(kube, namespace)
    r = cli("sync", "w", "--yes")
    outputs.append(r.stdout + r.stderr)
    check(name, spec, r.returncode, outputs, expect_ok)
    if expect_ok:
        r = cli("workflow", "remove", "w", "--cascade", "--yes")  # and cluster-scoped objects go with it
        assert r.returncode == 0, r.stdout + r.stderr
        return
    assert snapshot(kube, namespace) == was, "a refused sync changed the cluster"
    history = json.loads(cli("-o", "json", "history", "w").stdout)
    assert history and history[0]["status"] == "failed"  # on the record


def check(name: str, spec: dict[str, Any], code: int, outputs: list[str], expect_ok: bool) -> None:
    text = "\n".join(outputs)
    RESULTS[name] = False
    assert "Traceback" not in text, text
    if expect_ok:
        assert code == 0, text
    else:
        assert code == spec.get("exit", 2), f"exit {code}: {text}"
        error_lines = [ln for ln in text.splitlines() if ln.startswith("error:")]
        assert len(error_lines) <= 1, text  # one line, not a cascade
    for words in spec.get("message") or []:
        assert words in text, f"{words!r} not in: {text}"
    for secret in spec.get("absent") or []:
        assert secret not in text
    RESULTS[name] = True


def test_r4_figure(record: Any) -> None:
    """Runs after the cases (alphabetical order in this file): the figure for docs/reliability.md."""
    if not RESULTS:
        pytest.skip("run with the cases to make the figure")
    held = sum(RESULTS.values())
    record("R4", "bad input: a clear error naming file, document and object, exit 2, nothing applied",
           len(RESULTS), held, "make reliability  # tests/reliability/test_r4_bad_input.py")  # fmt: skip
