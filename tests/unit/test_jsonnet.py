"""Jsonnet directories rendered with the real jsonnet implementation (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.errors import ManifestError
from slipway.render import RenderContext, needs_whole_repository, render
from slipway.render.options import JsonnetOptions, render_options


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def context(repo: Path, **jsonnet: object) -> RenderContext:
    opts = render_options("wf", None, JsonnetOptions.from_config(jsonnet) if jsonnet else None)
    return RenderContext(workflow_id="wf", options=opts, repository_root=repo)


def cm(name: str, data: str = "{}") -> str:
    return "{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: %s}, data: %s}" % (name, data)  # noqa: UP031


def test_every_top_level_jsonnet_file_is_an_entry_and_libsonnet_files_are_libraries(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "apps/jn/a.jsonnet": "local l = import 'lib.libsonnet'; [" + cm("'a1'", "l.data") + ", " + cm("'a2'") + "]",
            "apps/jn/b.jsonnet": cm("'b'"),
            "apps/jn/lib.libsonnet": "{data: {from: 'lib'}}",
            "apps/jn/sub/c.jsonnet": cm("'never'"),  # subdirectories are libraries only
        },
    )
    out = render(repo / "apps/jn", label="apps/jn", context=context(repo))
    assert [(m.obj["metadata"]["name"], m.source) for m in out] == [
        ("a1", "apps/jn/a.jsonnet, item 1"),
        ("a2", "apps/jn/a.jsonnet, item 2"),
        ("b", "apps/jn/b.jsonnet"),
    ]
    assert out[0].obj["data"] == {"from": "lib"}


def test_a_directory_with_yaml_manifests_is_not_jsonnet(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "k8s/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n",
            "k8s/gen.jsonnet": "error 'must not be evaluated'",
        },
    )
    out = render(repo / "k8s", label="k8s", context=context(repo))
    assert [m.obj["metadata"]["name"] for m in out] == ["plain"]


def test_entry_tlas_ext_vars_and_libs(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        {
            "env/prod/main.jsonnet": (
                "local k = import 'k.libsonnet';\n"
                "function(name, replicas=1, labels={}) {apiVersion: 'v1', kind: 'List', items: [\n"
                "  k.cm(name, {replicas: std.toString(replicas), env: std.extVar('env'), tier: labels.tier}),\n"
                "  k.cm(name + '-2', {}),\n]}\n"
            ),
            "env/prod/other.jsonnet": "error 'not the entry'",
            "vendor/k.libsonnet": "{cm(n, d): {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: n}, data: d}}",
        },
    )
    ctx = context(
        repo,
        entry="main.jsonnet",
        tlas={"name": "web", "replicas": 3, "labels": {"tier": "front"}},
        ext_vars={"env": "prod"},
        libs=["vendor"],
    )
    assert needs_whole_repository(repo / "env/prod", ctx)
    out = render(repo / "env/prod", label="env/prod", context=ctx)
    assert [m.obj["metadata"]["name"] for m in out] == ["web", "web-2"]
    assert out[0].obj["data"] == {"replicas": "3", "env": "prod", "tier": "front"}
    assert out[1].source == "env/prod/main.jsonnet, item 2"


def test_a_missing_entry_is_an_error(tmp_path: Path) -> None:
    repo = write(tmp_path, {"j/a.jsonnet": cm("'a'")})
    with pytest.raises(ManifestError, match=r"jsonnet.entry main.jsonnet: not found"):
        render(repo / "j", label="j", context=context(repo, entry="main.jsonnet"))


@pytest.mark.parametrize(
    "files,message",
    [
        ({"j/main.jsonnet": "{\n  a: error 'boom',\n}"}, r"^j/main.jsonnet:2:\d+-\d+: RUNTIME ERROR: boom$"),
        ({"j/main.jsonnet": "{ a: }"}, r"^j/main.jsonnet:1:6: STATIC ERROR: unexpected"),
        (
            {"j/main.jsonnet": "(import 'l.libsonnet').x", "j/l.libsonnet": "{\n\n x: 1 + 'a' - null }"},
            r"j/l.libsonnet:3:\d+-\d+: RUNTIME ERROR",
        ),
        (
            {"j/main.jsonnet": "std.extVar('missing')"},
            r"j/main.jsonnet:1:1-22: RUNTIME ERROR: undefined external variable",
        ),
        ({"j/main.jsonnet": "'text'"}, r"j/main.jsonnet: evaluates to str, not a Kubernetes object"),
        ({"j/main.jsonnet": "{a: 1}"}, r"j/main.jsonnet: evaluates to an object that is not a Kubernetes object"),
        ({"j/main.jsonnet": "[{kind: 'ConfigMap'}]"}, r"j/main.jsonnet, item 1: missing apiVersion"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, files: dict[str, str], message: str) -> None:
    repo = write(tmp_path / "repo", files)
    with pytest.raises(ManifestError, match=message) as err:
        render(repo / "j", label="j", context=context(repo))
    assert str(tmp_path) not in str(err.value)


@pytest.mark.parametrize(
    "code",
    [
        "import '../../outside.libsonnet'",
        "importstr '../../outside.libsonnet'",
        "import '/etc/hostname'",
        "import 'link.libsonnet'",
    ],
)
def test_imports_outside_the_repository_are_refused(tmp_path: Path, code: str) -> None:
    (tmp_path / "outside.libsonnet").write_text("{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'leak'}}")
    repo = write(tmp_path / "repo", {"j/main.jsonnet": code})
    (repo / "j" / "link.libsonnet").symlink_to(tmp_path / "outside.libsonnet")
    with pytest.raises(ManifestError, match=r"j/main.jsonnet:1:\d+-\d+: RUNTIME ERROR: couldn't open import") as err:
        render(repo / "j", label="j", context=context(repo))
    assert "outside the repository" in str(err.value) or "absolute import" in str(err.value)


def test_a_lib_outside_the_repository_is_refused(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"j/main.jsonnet": cm("'a'")})
    with pytest.raises(ManifestError, match=r"jsonnet.libs ../elsewhere: outside the repository"):
        render(repo / "j", label="j", context=context(repo, libs=["../elsewhere"]))
