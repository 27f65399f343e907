"""Version constraints as Helm resolves chart dependencies (the rules of Masterminds/semver v3)."""

from __future__ import annotations

import pytest

from slipway.render.semver import Constraint, SemverError, Version


@pytest.mark.parametrize(
    "constraint,version,ok",
    [
        ("^1.2.3", "1.9.0", True),
        ("^1.2.3", "2.0.0", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.4", False),
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        ("~1", "1.9.9", True),
        ("1.2.x", "1.2.5", True),
        ("1.2.x", "1.3.0", False),
        ("*", "3.0.0", True),
        ("*", "3.0.0-rc.1", False),  # a pre-release only matches a constraint that names one
        (">=1.0.0-0", "1.0.0-rc.1", True),
        (">=1.0.0 <2.0.0", "1.5.0", True),
        (">=1.0.0, <2.0.0", "2.0.0", False),
        ("1.2 - 1.4.5", "1.4.5", True),
        ("1.2 - 1.4.5", "1.4.6", False),
        ("<1.0 || >=3", "3.1.0", True),
        ("<1.0 || >=3", "2.0.0", False),
        ("!=1.2.3", "1.2.3", False),
        ("!=*", "0.0.2", True),
        (">1.2", "1.2.5", False),
        (">1.2", "1.3.0", True),
        ("<=1.2", "1.2.9", True),
        ("<=1.2", "1.3.0", False),
        ("", "4.0.0", True),
    ],
)
def test_constraints(constraint: str, version: str, ok: bool) -> None:
    assert Constraint(constraint).check(Version.parse(version)) is ok


def test_best_is_the_highest_match_and_pre_releases_sort_before_releases() -> None:
    assert Constraint("^1.0").best(["1.0.0", "1.2.0", "2.0.0", "1.3.0-rc.1", "v1.1", "junk"]) == "1.2.0"
    assert Constraint(">=1.0.0-0").best(["1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-beta"]) == "1.0.0-rc.10"
    assert Constraint("^3").best(["1.0.0"]) is None


@pytest.mark.parametrize("text", ["1.2.3.4", ">>1", "^", "latest"])
def test_improper_constraints_are_errors(text: str) -> None:
    with pytest.raises(SemverError):
        Constraint(text)
