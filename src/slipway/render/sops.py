"""SOPS: files of a render encrypted with the real ``sops`` tool are decrypted with the workflow's keys.

Flux's ``decryption = {provider = "sops"}``: the keys are age identities (``AGE-SECRET-KEY-1...``)
and/or armored PGP private keys, kept sealed in the state store like Git credentials. Before a
path is rendered, every ``*.yaml``/``*.yml``/``*.json`` file of the scratch checkout that holds
SOPS metadata is decrypted in place by the ``sops`` binary, so plain manifests, kustomize inputs
and Helm values files all read plaintext. sops verifies the MAC: a tampered file is refused.

sops runs bounded like every render (:mod:`.bounded`) with an environment of its own: the age
identities in ``SOPS_AGE_KEY`` (never in argv), PGP keys imported into a throwaway ``GNUPGHOME``
whose agent is stopped after, ``HOME`` a scratch directory (so no key of the machine's user is
ever tried), and no cloud credentials. Its error output is never shown (it may quote the file's
MAC); an error names the file and says why in slipway's own words.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import tools
from ..configread import Reader
from ..errors import BuildError, ConfigError, DecryptionError, ManifestError
from . import bounded
from .base import RenderContext

EXTENSIONS = (".yaml", ".yml", ".json")
_AGE = re.compile(r"^AGE-SECRET-KEY-1[0-9A-Z]+$")
_PGP = re.compile(r"-----BEGIN PGP PRIVATE KEY BLOCK-----.*?-----END PGP PRIVATE KEY BLOCK-----", re.DOTALL)
# SOPS metadata: a top-level ``sops`` key holding a ``mac`` (YAML documents, or a JSON object).
_YAML_META = re.compile(rb"^sops:[ \t]*\r?$", re.MULTILINE)
_JSON_META = re.compile(rb'"sops"\s*:\s*\{')


@dataclass
class Decryption:
    """A workflow's decryption keys (Flux's ``spec.decryption``): age identities and PGP private keys."""

    provider: str = "sops"
    keys: str = field(default="", repr=False)

    @classmethod
    def from_config(cls, data: Any, where: str = "decryption") -> Decryption:
        r = Reader(data, where)
        provider = r.choice("provider", ("sops",), "sops")
        keys = r.get("keys", str, "") or ""
        r.done()
        out = cls(provider, keys.strip() + "\n" if keys.strip() else "")
        # Errors never repeat the keys.
        if not out.keys:
            raise ConfigError(f"{r.key('keys')}: required (age identities or an armored PGP private key)")
        ages, pgps = out.split()
        rest = _PGP.sub("", out.keys)
        stray = [ln for ln in rest.splitlines() if ln.strip() and not ln.startswith("#") and not _AGE.match(ln.strip())]
        if stray or not (ages or pgps):
            raise ConfigError(
                f"{r.key('keys')}: not age identities (AGE-SECRET-KEY-1...) or an armored PGP private key "
                f"({len(stray)} line(s) are neither)"
            )
        return out

    def split(self) -> tuple[list[str], list[str]]:
        """(age identities, armored PGP private keys)."""
        rest = _PGP.sub("", self.keys)
        ages = [ln.strip() for ln in rest.splitlines() if _AGE.match(ln.strip())]
        return ages, _PGP.findall(self.keys)

    def public(self) -> dict[str, Any]:
        ages, pgps = self.split()
        return {"provider": self.provider, "keys": f"{len(ages)} age identity(ies), {len(pgps)} PGP key(s) (sealed)"}


def is_encrypted(raw: bytes, suffix: str) -> bool:
    """True when a file's bytes hold SOPS metadata (a cheap look; sops itself decides the rest)."""
    if b"sops" not in raw or b"mac" not in raw:
        return False
    return bool(_JSON_META.search(raw) if suffix == ".json" else _YAML_META.search(raw))


def encrypted_files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if path.suffix in EXTENSIONS and path.is_file() and not path.is_symlink() and not rel[0].startswith("."):
            try:
                if is_encrypted(path.read_bytes(), path.suffix):
                    out.append(path)
            except OSError:
                continue
    return out


def decrypt_tree(
    root: Path,
    label: str,
    decryption: Decryption | None,
    context: RenderContext,
    *,
    skip: Path | None = None,
    strict: bool = True,
) -> None:
    """Decrypt every SOPS file under ``root`` (but ``skip``) in place; a ManifestError naming the first
    that cannot be. Not ``strict``: one that cannot be is left as it is (another team's file elsewhere
    in the repository); an object still encrypted after the render is refused (:func:`still_encrypted`)."""
    files = [f for f in encrypted_files(root) if skip is None or not f.is_relative_to(skip)]
    for path in files:
        display = "/".join(p for p in (label.strip("/"), path.relative_to(root).as_posix()) if p)
        if not strict:
            if decryption is not None:
                with contextlib.suppress(ManifestError):
                    _write(path, decrypt(path, display, decryption, context))
            continue
        if decryption is None:
            raise DecryptionError(
                f"{display}: is encrypted with SOPS and the workflow has no decryption keys",
                file=display,
                hint="give the workflow its keys: --decryption-key-env VAR or --decryption-key-file FILE",
            )
        _write(path, decrypt(path, display, decryption, context))


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def still_encrypted(obj: Any) -> bool:
    """True for a rendered object that is a SOPS document nobody decrypted (its top-level ``sops`` table)."""
    meta = obj.get("sops") if isinstance(obj, dict) else None
    return isinstance(meta, dict) and "mac" in meta


def decrypt(path: Path, display: str, decryption: Decryption, context: RenderContext) -> bytes:
    """The plaintext of one SOPS file, decrypted by the sops binary with only the workflow's keys."""
    try:
        sops = tools.find("sops")
    except BuildError as e:
        raise ManifestError(f"{display}: is encrypted with SOPS, and {e.message}") from None
    kind = "json" if path.suffix == ".json" else "yaml"
    ages, pgps = decryption.split()
    scratch = Path(tempfile.mkdtemp(prefix="slipway-sops-"))
    os.chmod(scratch, 0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch), "LANG": "C.UTF-8"}
    limits, deadline = context.bounds()
    try:
        if ages:
            env["SOPS_AGE_KEY"] = "\n".join(ages)
        if pgps:
            env["GNUPGHOME"] = str(scratch / "gnupg")  # set first: the agent an import starts is stopped too
            _import_pgp(scratch, pgps, display, context, env)
        argv = [sops, "--decrypt", "--input-type", kind, "--output-type", kind, str(path)]
        proc = bounded.run(argv, where=display, limits=limits, deadline=deadline, cancel=context.cancel,
                           env=env, cwd=scratch)  # fmt: skip
        if proc.returncode != 0:
            raise DecryptionError(f"{display}: cannot be decrypted: {_reason(proc.stderr)}", file=display)
        return proc.stdout
    finally:
        if pgps:
            _stop_agent(env, context)
        shutil.rmtree(scratch, ignore_errors=True)


def _import_pgp(scratch: Path, pgps: list[str], display: str, context: RenderContext, env: dict[str, str]) -> None:
    gpg = shutil.which("gpg")
    if gpg is None:
        raise ManifestError(f"{display}: the workflow's PGP keys need gpg (GnuPG), which is not installed")
    Path(env["GNUPGHOME"]).mkdir(mode=0o700)
    keyfile = scratch / "keys.asc"
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(pgps) + "\n")
    limits, deadline = context.bounds()
    proc = bounded.run([gpg, "--batch", "--quiet", "--import", str(keyfile)], where=display, limits=limits,
                       deadline=deadline, cancel=context.cancel, env=env, cwd=scratch)  # fmt: skip
    keyfile.unlink()
    if proc.returncode != 0:
        raise DecryptionError(
            f"{display}: cannot be decrypted: gpg cannot read the workflow's PGP key (a passphrase?)", file=display
        )


def _stop_agent(env: dict[str, str], context: RenderContext) -> None:
    """gpg starts an agent for the throwaway home; nothing of a render outlives it."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf is None or "GNUPGHOME" not in env:
        return
    limits, _ = context.bounds()
    with contextlib.suppress(ManifestError):
        bounded.run([gpgconf, "--kill", "all"], where="gpgconf", limits=limits, deadline=time.monotonic() + 10,
                    env=env)  # fmt: skip


def _reason(stderr: str) -> str:
    """Why sops failed, in slipway's words: its own text may quote the MAC or the file's data."""
    text = stderr.lower()
    if "mac mismatch" in text:
        return "its MAC does not match its content; the file was changed after it was encrypted"
    if "error getting data key" in text or "failed to get the data key" in text or "no identity matched" in text:
        return "none of the workflow's decryption keys can decrypt it"
    if "error unmarshalling" in text or "could not unmarshal" in text or "error loading file" in text:
        return "it is not a well-formed SOPS file"
    return "sops failed (it is not a SOPS file sops can read with the workflow's keys)"
