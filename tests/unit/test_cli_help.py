"""Every command, group and option of the command line says what it does, in plain words."""

from __future__ import annotations

import click

from slipway.cli.main import cli as root


def walk(group: click.Group, path: str) -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        out.append((f"{path} {name}", command))
        if isinstance(command, click.Group):
            out += walk(command, f"{path} {name}")
    return out


def test_every_command_group_and_option_has_help() -> None:
    missing: list[str] = []
    for path, command in [("slipway", root), *walk(root, "slipway")]:
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[-1]}")
    assert not missing, "no help text: " + ", ".join(missing)


def test_the_commands_import_no_engine_until_they_run() -> None:
    import subprocess
    import sys

    code = "import sys, slipway.cli.main; print(sorted(m for m in sys.modules if m.startswith(('slipway.engine', 'slipway.kube.client', 'slipway.kube.transport', 'rich', 'yaml'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_engine_loads_the_kubernetes_client_only_to_reach_a_cluster() -> None:
    import subprocess
    import sys

    code = (
        "import sys, slipway.engine, slipway.gitops; e = slipway.engine.Engine; "
        "print(sorted(m for m in sys.modules if m.startswith(('slipway.kube.client', 'slipway.kube.transport', 'http.client', 'slipway.render.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
