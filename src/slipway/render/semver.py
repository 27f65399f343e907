"""Semantic versions and the constraints Helm resolves chart dependencies with.

A port of the rules of the Go library Helm uses (Masterminds/semver v3), so that a range in a
``Chart.yaml`` picks the same version slipway's dependency fetch as ``helm dependency update``
would: ``||`` separates alternatives, ``,`` or spaces join conditions, ``1.2 - 1.4.5`` is a
range, and the operators are ``= != > < >= <= ~ ~> ^`` with ``x``/``*`` wildcards. A
pre-release version matches only an alternative that names a pre-release itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_CV = r"v?([0-9xX*]+)(\.[0-9xX*]+)?(\.[0-9xX*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
_OPS = r"=|!=|>|<|>=|=>|<=|=<|~|~>|\^"
_OPS_ANY = r"(?:!=|>=|=>|<=|=<|~>|=|>|<|~|\^)?"
_CONSTRAINT = re.compile(rf"^\s*({_OPS_ANY})\s*({_CV})\s*$")
_FIND = re.compile(rf"({_OPS_ANY})\s*({_CV})")
_VALID = re.compile(rf"^(\s*{_OPS_ANY}\s*{_CV}\s*)((?:\s+|,\s*){_OPS_ANY}\s*{_CV}\s*)*$")
_RANGE = re.compile(rf"\s*({_CV})\s+-\s+({_CV})\s*")
_VERSION = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*))?(?:\+[0-9A-Za-z\-.]+)?$"
)
del _OPS


class SemverError(ValueError):
    pass


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION.match(str(text).strip())
        if not m:
            raise SemverError(f"{text!r} is not a semantic version")
        return cls(int(m[1]), int(m[2] or 0), int(m[3] or 0), m[4] or "", str(text))

    def _key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def compare(self, other: Version) -> int:
        if self._key() != other._key():
            return -1 if self._key() < other._key() else 1
        return _compare_pre(self.pre, other.pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.compare(other) == 0

    def __lt__(self, other: Version) -> bool:
        return self.compare(other) < 0

    def __hash__(self) -> int:
        return hash((self._key(), self.pre))


def _compare_pre(a: str, b: str) -> int:
    if a == b:
        return 0
    if not a:
        return 1  # a release sorts after its pre-releases
    if not b:
        return -1
    pa, pb = a.split("."), b.split(".")
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        xd, yd = x.isdigit(), y.isdigit()
        if xd and yd:
            return -1 if int(x) < int(y) else 1
        if xd != yd:
            return -1 if xd else 1  # numeric identifiers sort before alphanumeric ones
        return -1 if x < y else 1
    return -1 if len(pa) < len(pb) else (1 if len(pa) > len(pb) else 0)


def _is_x(part: str) -> bool:
    return part in ("x", "X", "*")


@dataclass(frozen=True)
class _Term:
    op: str
    con: Version
    dirty: bool
    minor_dirty: bool
    patch_dirty: bool

    @classmethod
    def parse(cls, text: str) -> _Term:
        m = _CONSTRAINT.match(text)
        if not m:
            raise SemverError(f"improper constraint: {text}")
        op, major, minor, patch, pre = m[1], m[3], (m[4] or "")[1:], (m[5] or "")[1:], m[7] or ""
        suffix = f"-{pre}" if pre else ""
        dirty = minor_dirty = patch_dirty = False
        if _is_x(major):
            ver, dirty = f"0.0.0{suffix}", True
        elif not minor or _is_x(minor):
            ver, dirty, minor_dirty = f"{major}.0.0{suffix}", True, True
        elif not patch or _is_x(patch):
            ver, dirty, patch_dirty = f"{major}.{minor}.0{suffix}", True, True
        else:
            ver = f"{major}.{minor}.{patch}{suffix}"
        return cls(op, Version.parse(ver), dirty, minor_dirty, patch_dirty)

    def check(self, v: Version) -> bool:
        c, op = self.con, self.op
        if op in ("", "="):
            return self._tilde(v) if self.dirty else v == c
        if op == "!=":
            if self.dirty:
                if c.major != v.major:
                    return True
                if self.minor_dirty:
                    return False
                if c.minor != v.minor:
                    return True
                if self.patch_dirty:
                    return bool(v.pre or c.pre) and _compare_pre(v.pre, c.pre) != 0
                if c.patch != v.patch:
                    return True
            return v != c
        if op == ">":
            if not self.dirty or (v.major == c.major and not self.minor_dirty and not self.patch_dirty):
                return v > c
            if v.major != c.major:
                return v.major > c.major
            return self.patch_dirty and v.minor > c.minor
        if op == "<":
            return v < c
        if op in (">=", "=>"):
            return v >= c
        if op in ("<=", "=<"):
            if not self.dirty:
                return v <= c
            return not (v.major > c.major or (v.major == c.major and v.minor > c.minor and not self.minor_dirty))
        if op in ("~", "~>"):
            return self._tilde(v)
        return self._caret(v)

    def _tilde(self, v: Version) -> bool:
        c = self.con
        if v < c:
            return False
        if c._key() == (0, 0, 0) and not self.minor_dirty and not self.patch_dirty:
            return True
        return v.major == c.major and (v.minor == c.minor or self.minor_dirty)

    def _caret(self, v: Version) -> bool:
        c = self.con
        if v < c:
            return False
        if c.major > 0 or self.minor_dirty:
            return v.major == c.major
        if v.major > 0:
            return False
        if c.minor > 0 or self.patch_dirty:
            return v.minor == c.minor
        if v.minor > 0:
            return False
        return v.patch == c.patch


class Constraint:
    """A parsed version constraint; :meth:`check` says whether a version satisfies it."""

    def __init__(self, text: str) -> None:
        self.text = text
        source = text.strip() or "*"
        source = _RANGE.sub(lambda m: f">= {m[1]}, <= {m[11]} ", source)
        self._alternatives: list[tuple[list[_Term], bool]] = []
        for alternative in source.split("||"):
            if not _VALID.match(alternative):
                raise SemverError(f"improper constraint: {alternative.strip()}")
            terms = [_Term.parse(m.group(0)) for m in _FIND.finditer(alternative)]
            self._alternatives.append((terms, any(t.con.pre for t in terms)))

    def check(self, v: Version) -> bool:
        for terms, with_pre in self._alternatives:
            if v.pre and not with_pre:
                continue
            if all(t.check(v) for t in terms):
                return True
        return False

    def best(self, versions: list[str]) -> str | None:
        """The highest of ``versions`` that satisfies the constraint (unparseable ones are skipped)."""
        good: list[Version] = []
        for text in versions:
            try:
                v = Version.parse(text)
            except SemverError:
                continue
            if self.check(v):
                good.append(v)
        return max(good).text if good else None
