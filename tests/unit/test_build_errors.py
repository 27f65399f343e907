"""A missing Go or a failed build is one line naming the component and its log, not a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def slipway(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slipway", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_missing_go_is_one_clear_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh"):  # anything but go
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir), "SLIPWAY_CACHE": str(tmp_path / "cache")}
    r = slipway("cluster", "build", env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "cannot build kubernetes v1.37.2: the Go toolchain (go) is not on PATH" in lines[0]
    assert str(tmp_path / "cache" / "build" / "kubernetes-v1.37.2" / "build.log") in lines[0]
    assert "Traceback" not in r.stderr


def test_failed_build_names_the_component_and_its_log(tmp_path: Path) -> None:
    # An empty module cache and no proxy: the real go command fails at once, as it would offline.
    env = {
        **os.environ,
        "SLIPWAY_CACHE": str(tmp_path / "cache"),
        "GOMODCACHE": str(tmp_path / "mod"),
        "GOPROXY": "off",
    }
    r = slipway("cluster", "build", env=env)
    assert r.returncode == 2
    log = tmp_path / "cache" / "build" / "kubernetes-v1.37.2" / "build.log"
    assert r.stderr.strip().splitlines()[-1] == f"error: building kubernetes v1.37.2 failed; see {log}"
    assert "Traceback" not in r.stderr
    assert "go mod tidy" in log.read_text()
    assert not (tmp_path / "cache" / "bin" / "kubernetes-v1.37.2").exists()  # nothing half-built is kept
