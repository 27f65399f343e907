"""Where slipway keeps things: SLIPWAY_HOME alone separates one installation's state from another's."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway import settings


def test_git_mirrors_live_in_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPWAY_GIT_CACHE", raising=False)
    monkeypatch.setenv("SLIPWAY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SLIPWAY_CACHE", raising=False)
    assert settings.git_cache() == tmp_path / "home" / "git"
    # The build cache is shared between homes; mirrors do not follow it.
    monkeypatch.setenv("SLIPWAY_CACHE", str(tmp_path / "cache"))
    assert settings.git_cache() == tmp_path / "home" / "git"
    monkeypatch.setenv("SLIPWAY_GIT_CACHE", str(tmp_path / "mirrors"))
    assert settings.git_cache() == tmp_path / "mirrors"
