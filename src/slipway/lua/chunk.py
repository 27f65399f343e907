"""Several Lua files as one chunk, with a line map back to the files.

``slipway run a.lua b.lua`` joins the files into one chunk (so ``b`` sees the locals of ``a``,
as the seed's 08 needs those of 04 and 05). Lua then only knows one synthetic chunk, so every
message and traceback it produces is rewritten here: ``slipway.chunk:LINE`` becomes the
original ``FILE:LINE``. The synthetic name is kept short on purpose — Lua truncates long chunk
names in messages, which would make them impossible to map.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

CHUNK_NAME = "slipway.chunk"
_CHUNK_REF = re.compile(re.escape(CHUNK_NAME) + r":(\d+)")
_AT_LINE = re.compile(r"\bat line (\d+)\)")


@dataclass(frozen=True)
class SourceFile:
    name: str  # as the user named it: what messages show
    first_line: int  # its first line, counted in the chunk (1-based)
    lines: int


class Chunk:
    """The joined text of several files and the map from its lines back to theirs."""

    def __init__(self, sources: list[tuple[str, str]]) -> None:
        parts: list[str] = []
        self.files: list[SourceFile] = []
        line = 1
        for name, text in sources:
            text = _normalize(text)
            count = text.count("\n")
            self.files.append(SourceFile(name, line, count))
            parts.append(text)
            line += count
        self.text = "".join(parts)
        self._starts = [f.first_line for f in self.files]

    @classmethod
    def from_paths(cls, paths: list[Path]) -> Chunk:
        """Read the files (UTF-8); OSError/UnicodeDecodeError propagate, naming the file."""
        return cls([(str(p), p.read_text(encoding="utf-8")) for p in paths])

    def locate(self, chunk_line: int) -> tuple[str, int]:
        """The file and line of a line of the chunk."""
        if not self.files:
            return CHUNK_NAME, chunk_line
        i = max(0, bisect.bisect_right(self._starts, chunk_line) - 1)
        f = self.files[i]
        return f.name, chunk_line - f.first_line + 1

    def where(self, chunk_line: int) -> str:
        name, line = self.locate(chunk_line)
        return f"{name}:{line}"

    def rewrite(self, text: str) -> str:
        """Replace every ``slipway.chunk:N`` (messages, tracebacks) with ``FILE:LINE``."""
        text = _CHUNK_REF.sub(lambda m: self.where(int(m.group(1))), text)
        # Syntax errors also say "(to close 'function' at line 24)", in chunk lines.
        return _AT_LINE.sub(lambda m: f"at {self.where(int(m.group(1)))})", text)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]


def _normalize(text: str) -> str:
    """One file's text, ready to be joined: no BOM, ``\\n`` line ends, a final newline.

    A ``#!`` first line is blanked rather than removed, as the ``lua`` interpreter skips it,
    so that line numbers stay those of the file.
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("#"):
        end = text.find("\n")
        text = "" if end < 0 else text[end:]
    if not text.endswith("\n"):
        text += "\n"
    return text
