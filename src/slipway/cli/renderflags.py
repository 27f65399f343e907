"""``slipway workflow create`` and ``set``: the flags for the ``helm``, ``jsonnet``, ``decryption`` and
``post_build`` tables.

A table is only set when one of its flags is given (``set`` changes only the keys given). ``--helm-set a.b=3`` nests on dots and types the
value as ``helm --set`` does (``true``, ``false``, ``null``, an integer, else text; one pair per flag);
``--helm-values-json`` takes a whole table, and ``--helm-set`` lands on top of it. Inline values
are stored with the workflow: keep secrets out of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError

_OPTIONS = [
    click.option("--helm-release-name", metavar="NAME", help="Helm release name (default: the workflow id)."),
    click.option(
        "--helm-values-file",
        multiple=True,
        metavar="PATH",
        help="Values file, relative to the chart (repeatable; applied in order).",
    ),
    click.option(
        "--helm-set",
        multiple=True,
        metavar="KEY=VALUE",
        help="One inline value (repeatable; dotted keys nest; typed as helm --set types it).",
    ),
    click.option("--helm-values-json", metavar="JSON", help="Inline values as a JSON object, merged last."),
    click.option("--helm-skip-crds/--no-helm-skip-crds", default=None, help="Leave out the chart's crds/ directory."),
    click.option("--jsonnet-entry", metavar="FILE", help="The .jsonnet file to evaluate, relative to --path."),
    click.option("--jsonnet-tla", multiple=True, metavar="NAME=VALUE", help="A top-level argument (string)."),
    click.option(
        "--jsonnet-tla-json",
        multiple=True,
        metavar="NAME=JSON",
        help="A top-level argument given as JSON: a number, a boolean, a list, an object.",
    ),
    click.option("--jsonnet-ext-var", multiple=True, metavar="NAME=VALUE", help="An external variable (string)."),
    click.option(
        "--jsonnet-lib",
        multiple=True,
        metavar="DIR",
        help="A library directory, relative to the repository root (repeatable).",
    ),
    click.option(
        "--decryption-key-env",
        metavar="VAR",
        help="Environment variable holding SOPS keys (age identities or an armored PGP private key).",
    ),
    click.option(
        "--decryption-key-file",
        metavar="FILE",
        help="File holding SOPS keys (age identities, e.g. keys.txt, or an armored PGP private key).",
    ),
    click.option(
        "--substitute",
        multiple=True,
        metavar="KEY=VALUE",
        help="A post-build variable: ${KEY} in rendered objects becomes VALUE (repeatable).",
    ),
    click.option(
        "--substitute-from",
        multiple=True,
        metavar="configmap/NAME|secret/NAME",
        help="Post-build variables from a ConfigMap or Secret in the destination namespace (repeatable; "
        "later ones win; a trailing ? makes it optional).",
    ),
]


def render_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def decryption_table(opts: dict[str, Any]) -> dict[str, Any] | None:
    """--decryption-key-env / --decryption-key-file: the keys never come from argv itself."""
    from .common import read_file, secret_from_env

    env, path = opts.get("decryption_key_env"), opts.get("decryption_key_file")
    if env and path:
        raise ConfigError("--decryption-key-env and --decryption-key-file: give one")
    keys = secret_from_env(env, "--decryption-key-env")
    found = read_file(path, "--decryption-key-file")
    if found:
        try:
            keys = Path(found).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"--decryption-key-file {path}: cannot read it as text") from None
    return {"provider": "sops", "keys": keys} if keys else None


def post_build_table(opts: dict[str, Any]) -> dict[str, Any] | None:
    table: dict[str, Any] = {}
    values = dict(_pair(t, "--substitute") for t in opts.get("substitute") or ())
    if values:
        table["substitute"] = values
    sources = [_source(t) for t in opts.get("substitute_from") or ()]
    if sources:
        table["substitute_from"] = sources
    return table or None


def _source(text: str) -> dict[str, Any]:
    """``configmap/NAME`` or ``secret/NAME`` (a trailing ``?``: optional); the model checks the name."""
    kind, sep, name = text.partition("/")
    kinds = {"configmap": "ConfigMap", "secret": "Secret"}
    if not sep or kind.lower() not in kinds:
        raise ConfigError(f"--substitute-from: expected configmap/NAME or secret/NAME, got {text!r}")
    return {"kind": kinds[kind.lower()], "name": name.rstrip("?"), "optional": name.endswith("?")}


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag}: expected NAME=VALUE, got {text!r}")
    return key.strip(), value


def helm_table(opts: dict[str, Any]) -> dict[str, Any] | None:
    table: dict[str, Any] = {}
    if opts.get("helm_release_name"):
        table["release_name"] = opts["helm_release_name"]
    if opts.get("helm_values_file"):
        table["values_files"] = list(opts["helm_values_file"])
    if opts.get("helm_skip_crds") is not None:
        table["skip_crds"] = opts["helm_skip_crds"]
    values: dict[str, Any] = {}
    if opts.get("helm_values_json"):
        try:
            values = json.loads(opts["helm_values_json"])
        except json.JSONDecodeError as e:
            raise ConfigError(f"--helm-values-json: invalid JSON at column {e.colno}: {e.msg}") from None
        if not isinstance(values, dict):
            raise ConfigError("--helm-values-json: expected a JSON object")
    for item in opts.get("helm_set") or ():
        key, raw = _pair(item, "--helm-set")
        value = _typed(raw)
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--helm-set {key}: {part} is already set to a value, not a table")
            node = child
        node[parts[-1]] = value
    if values:
        table["values"] = values
    return table or None


def _typed(raw: str) -> Any:
    """A --set value as Helm types it: true, false, null, an integer without a leading zero, else text."""
    lower = raw.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if lower == "null":
        return None
    if raw == "0" or (raw[:1] not in ("", "0") and re.fullmatch(r"[-+]?\d+", raw) and abs(int(raw)) < 2**63):
        return int(raw)
    return raw


def jsonnet_table(opts: dict[str, Any]) -> dict[str, Any] | None:
    table: dict[str, Any] = {}
    if opts.get("jsonnet_entry"):
        table["entry"] = opts["jsonnet_entry"]
    tlas = dict(_pair(t, "--jsonnet-tla") for t in opts.get("jsonnet_tla") or ())
    for item in opts.get("jsonnet_tla_json") or ():
        name, text = _pair(item, "--jsonnet-tla-json")
        try:
            tlas[name] = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(f"--jsonnet-tla-json {name}: the value is not JSON") from None
    if tlas:
        table["tlas"] = tlas
    ext = dict(_pair(t, "--jsonnet-ext-var") for t in opts.get("jsonnet_ext_var") or ())
    if ext:
        table["ext_vars"] = ext
    if opts.get("jsonnet_lib"):
        table["libs"] = list(opts["jsonnet_lib"])
    return table or None
