"""docs/reliability.md's table from the figures a run of the reliability suite recorded.

    python -m tests.reliability.report [results.json] [--write docs/reliability.md]

Prints the table in Markdown; with ``--write``, replaces the table between the markers of that file.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from .conftest import OUT

BEGIN, END = "<!-- figures: begin -->", "<!-- figures: end -->"
TITLES = {
    "R1": "crash anywhere", "R2": "the cluster goes away", "R3": "Git goes wrong", "R4": "bad input",
    "R5": "secrets never leak", "R6": "prune never surprises", "R7": "concurrency", "R8": "the service under load",
}  # fmt: skip


def table(results: dict[str, dict[str, object]]) -> str:
    rows = ["| | what was tried | tried | held | size | how to reproduce |", "|---|---|---|---|---|---|"]
    for key in sorted(results):
        r = results[key]
        size = "full" if r.get("full") else "CI"
        rows.append(f"| {key} {TITLES.get(key, '')} | {r['what']} | {r['tried']} | {r['held']} | {size} | "
                    f"`{r['command']}` |")  # fmt: skip
    cpus = len([ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("processor")])
    when = time.strftime("%Y-%m-%d", time.gmtime())
    return "\n".join(rows) + f"\n\nRun on {when}, {platform.system()} {platform.machine()}, {cpus} CPUs.\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv and not argv[0].startswith("--") else OUT
    results = json.loads(path.read_text())
    text = table(results)
    if "--write" in argv:
        doc = Path(argv[argv.index("--write") + 1])
        body = doc.read_text()
        start, end = body.index(BEGIN) + len(BEGIN), body.index(END)
        doc.write_text(body[:start] + "\n" + text + body[end:])
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
