"""The curl commands docs/server.md shows with a body, run as written against a real server.

A JSON body needs ``Content-Type: application/json``: curl's ``-d`` alone sends form data, which the
API refuses (a form is what a page of another site can post without asking, so it is never read as
JSON). Every documented command with a body says so, and works.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import SlipwayServer

pytestmark = pytest.mark.cluster

DOC = Path(__file__).parents[2] / "docs" / "server.md"


def documented_commands() -> list[str]:
    """Every curl command of the page (continuation lines joined, trailing comments dropped)."""
    lines = [line.strip() for line in DOC.read_text().splitlines() if line.startswith("    ")]
    out: list[str] = []
    joined = ""
    for line in lines:
        joined = f"{joined} {line}".strip() if joined else line
        if joined.endswith("\\"):
            joined = joined[:-1].rstrip()
            continue
        if joined.count("'") % 2:  # a quoted body goes on over the next line
            continue
        if joined.startswith("curl "):
            out.append(re.sub(r"\s+#[^'\"]*$", "", joined))
        joined = ""
    return out


def run(server: SlipwayServer, command: str) -> int:
    env = {"S": server.url, "T": server.tokens["admin"], "PATH": "/usr/bin:/bin"}
    r = subprocess.run(["bash", "-c", f"{command} -s -o /dev/null -w '%{{http_code}}'"], env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    return int(r.stdout or 0)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_every_documented_command_with_a_body_says_json_and_works(start_server) -> None:  # type: ignore[no-untyped-def]
    with_body = [c for c in documented_commands() if " -d '" in c]
    assert len(with_body) >= 6, with_body
    server = start_server()
    for command in with_body:
        assert '-H "Content-Type: application/json"' in command, command
        code = run(server, command)
        # 404: the rollback of a workflow that never synced; 403: an action on an object the workflow does
        # not own (it synced nothing); every other command does what it says.
        assert code in (200, 201, 403, 404), (code, command)
        assert code != 404 or "/rollback" in command, (code, command)
        assert code != 403 or "/actions" in command, (code, command)
    # Why the header is there: without it curl says "form data", and the body is not read as JSON.
    bare = with_body[-1].replace(' -H "Content-Type: application/json"', "")
    assert run(server, bare) == 422
