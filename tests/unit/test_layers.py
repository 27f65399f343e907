"""The layers stay honest: one package talks to Kubernetes, one runs git, the fronts call only the engine.

Read from the source with ``ast`` (no import needed), so a violation is named by file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[2] / "src" / "slipway"

# The fronts: every way in for a user. They call the engine (and read its result types), nothing else.
FRONTS = ["cli", "lua", "server", "gitops.py", "controller.py"]
# What a front may import from slipway besides itself: the engine, its nouns and result types.
FRONT_MAY_IMPORT = {
    "slipway.engine", "slipway.model", "slipway.errors", "slipway.durations", "slipway.settings",
    "slipway.plan.model", "slipway.results", "slipway.insight", "slipway.controller", "slipway.lua", "slipway.gitops",
    "slipway.cluster",  # the local control plane of `slipway cluster`: development infrastructure
    "slipway.server",  # `slipway server` (the CLI) starts the server front, itself held to these rules
}  # fmt: skip
ENGINE_INTERNALS = ("store", "source", "kube", "_kube_factory")


def modules(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        p = SRC / part
        out += sorted(p.rglob("*.py")) if p.is_dir() else ([p] if p.exists() else [])
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, resolved to absolute names, with its line."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return out


def rel(path: Path) -> str:
    return path.relative_to(SRC.parent).as_posix()


def test_only_kube_talks_to_kubernetes() -> None:
    bad = [
        f"{rel(p)}:{line} imports {name}"
        for p in modules(".")
        if "kube" not in p.relative_to(SRC).parts[:1] and "cluster" not in p.relative_to(SRC).parts[:1]
        for line, name in imports(p)
        if name.split(".")[0] in ("lightkube", "httpx2", "kubernetes")
        or any(name.endswith(f"kube.{m}") or f"kube.{m}." in name for m in ("transport", "kubeconfig"))
    ]
    assert not bad, "only slipway.kube may talk to Kubernetes:\n" + "\n".join(bad)


def test_only_source_runs_git() -> None:
    bad = []
    for p in modules("."):
        top = p.relative_to(SRC).parts[0]
        if top in ("source", "cluster"):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            # git in an argv list, or looked up on PATH: "git" as a path component is fine.
            argv = isinstance(node, ast.List | ast.Tuple) and node.elts
            if argv and isinstance(node.elts[0], ast.Constant) and node.elts[0].value == "git":
                bad.append(f"{rel(p)}:{node.lineno}")
            which = isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "which"
            if which and any(isinstance(a, ast.Constant) and a.value == "git" for a in node.args):  # type: ignore[attr-defined]
                bad.append(f"{rel(p)}:{node.lineno}")
    assert not bad, "only slipway.source may run git:\n" + "\n".join(bad)


def test_fronts_call_only_the_engine() -> None:
    bad = []
    for p in modules(*FRONTS):
        own = module_name(p).split(".")[:2]
        for line, name in imports(p):
            if not name.startswith("slipway.") or name.split(".")[:2] == own:
                continue
            if not any(name == m or name.startswith(m + ".") for m in FRONT_MAY_IMPORT):
                bad.append(f"{rel(p)}:{line} imports {name}")
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ENGINE_INTERNALS:
                value = node.value
                if (isinstance(value, ast.Attribute) and value.attr == "engine") or (
                    isinstance(value, ast.Call)
                    and getattr(value.func, "id", getattr(value.func, "attr", "")) == "engine"
                ):
                    bad.append(f"{rel(p)}:{node.lineno} reaches into the engine's {node.attr}")
    assert not bad, "fronts call the engine, nothing else:\n" + "\n".join(bad)


def test_the_engine_never_imports_the_local_cluster() -> None:
    bad = [
        f"{rel(p)}:{line} imports {name}"
        for p in modules(".")
        if p.relative_to(SRC).parts[0] not in ("cluster", "cli")
        for line, name in imports(p)
        if name == "slipway.cluster" or name.startswith("slipway.cluster.")
    ]
    assert not bad, "cluster/ is development infrastructure, not part of the engine:\n" + "\n".join(bad)


def test_no_module_is_too_big() -> None:
    big = [f"{rel(p)}: {n} lines" for p in modules(".") if (n := len(p.read_text().splitlines())) > 520]
    assert not big, "modules stay under ~500 lines:\n" + "\n".join(big)
