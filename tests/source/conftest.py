"""The source stage against real Git servers (see tests/gitservers.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from slipway.source import GitSource
from tests.gitservers import GitConfig


@pytest.fixture(autouse=True)
def _isolated(slipway_env: dict[str, Path], git_config: GitConfig) -> None:
    """Every test: its own SLIPWAY_HOME/SLIPWAY_CACHE, and no git config but its own (no helpers, no rewrites)."""


@pytest.fixture
def source() -> GitSource:
    """A GitSource on this test's SLIPWAY_CACHE and SLIPWAY_HOME."""
    return GitSource()


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name no other test of the session uses on the shared servers."""
    return f"{request.node.name.split('[')[0].removeprefix('test_')[:40]}-{secrets.token_hex(3)}"
