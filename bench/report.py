"""Figures, their summary (median, min, max, ratio to an anchor, target met or missed), table and JSON."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Comparison:
    """This figure's median over an anchor's median; ``target`` is the highest ratio that meets it."""

    anchor: str
    target: float | None = None


@dataclass
class Figure:
    key: str  # "P1.slipway"
    title: str
    unit: str  # "s", "writes", "%", "MiB"
    values: list[float] = field(default_factory=list)  # one per run (or per sample, see ``samples``)
    target: float | None = None  # the highest value that meets the target
    target_on: str = "median"  # which statistic the target applies to: "median" or "max"
    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""
    samples: str = "runs"  # what ``values`` are: "runs", or e.g. "commits (3 per run)"
    extra: list[dict[str, Any]] = field(default_factory=list)  # per value: itself, breakdowns, counts

    def add(self, value: float, **extra: Any) -> None:
        self.values.append(float(value))
        self.extra.append({"value": round(float(value), 4), **extra})

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def min(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def max(self) -> float | None:
        return max(self.values) if self.values else None

    def met(self) -> bool | None:
        if self.target is None or not self.values:
            return None
        value = self.max if self.target_on == "max" else self.median
        assert value is not None
        return value <= self.target


def ratio(fig: Figure, anchor: Figure) -> float | None:
    if fig.median is None or not anchor.median:
        return None
    return fig.median / anchor.median


def summary(figures: dict[str, Figure]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, fig in figures.items():
        comps = []
        for c in fig.comparisons:
            anchor = figures.get(c.anchor)
            r = ratio(fig, anchor) if anchor is not None else None
            comps.append(
                {
                    "anchor": c.anchor,
                    "anchor_title": anchor.title if anchor else None,
                    "ratio": r,
                    "target": c.target,
                    "met": None if c.target is None or r is None else r <= c.target,
                }
            )
        out[key] = {
            "title": fig.title,
            "unit": fig.unit,
            "median": fig.median,
            "min": fig.min,
            "max": fig.max,
            "values": fig.values,
            "samples": fig.samples,
            "target": fig.target,
            "target_on": fig.target_on if fig.target is not None else None,
            "met": fig.met(),
            "comparisons": comps,
            "note": fig.note,
            "runs": fig.extra,
        }
    return out


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "writes":
        return f"{value:.0f}"
    if unit == "shards":
        return f"{value:.0f} shards"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _target(value: float | None, unit: str, on: str) -> str:
    if value is None:
        return ""
    prefix = "max " if on == "max" else ""
    return f"{prefix}<= {_num(value, unit)}"


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "MISSED")


def rows(data: dict[str, Any]) -> list[list[str]]:
    """Table rows: figure, median, min, max, ratio to anchor, target, met/missed."""
    out: list[list[str]] = []
    for key, f in data.items():
        unit = f["unit"]
        head = [key, f["title"], _num(f["median"], unit), _num(f["min"], unit), _num(f["max"], unit)]
        lines: list[list[str]] = []
        if f["target"] is not None:
            lines.append(["", _target(f["target"], unit, f["target_on"]), _verdict(f["met"])])
        for c in f["comparisons"]:
            r = "-" if c["ratio"] is None else f"{c['ratio']:.2f}x {c['anchor']}"
            t = "" if c["target"] is None else f"<= {c['target']:g}x"
            lines.append([r, t, _verdict(c["met"])])
        if not lines:
            lines.append(["", "", ""])
        for i, tail in enumerate(lines):
            out.append((head if i == 0 else [""] * len(head)) + tail)
    return out


HEADER = ["id", "figure", "median", "min", "max", "ratio", "target", "result"]


def table(data: dict[str, Any]) -> str:
    body = rows(data)
    widths = [max(len(r[i]) for r in [HEADER, *body]) for i in range(len(HEADER))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([fmt(HEADER), fmt(["-" * w for w in widths]), *(fmt(r) for r in body)])


def markdown(data: dict[str, Any]) -> str:
    body = rows(data)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


__all__ = ["Comparison", "Figure", "markdown", "ratio", "rows", "summary", "table"]
