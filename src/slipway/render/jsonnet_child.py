"""The child process that evaluates Jsonnet for :mod:`.jsonnet`: run as a script, never imported by slipway.

It reads one request (JSON) on stdin and writes one answer (JSON) on stdout: the text each entry
evaluates to, or the first error. It imports nothing of slipway, so it starts in milliseconds; it
caps its own address space (the parent watches its resident memory too, and says which limit was
hit); imports are resolved here, inside the repository only, as the parent's module describes.
"""

import json
import os
import resource
import sys
from pathlib import Path

MAX_FILE = 32 * 1024 * 1024
HEADROOM = 256 * 1024 * 1024  # the interpreter's own mappings, beyond what the parent allows it to hold


def _inside(path: Path, boundary: Path) -> bool:
    try:
        path.resolve().relative_to(boundary)
        return True
    except ValueError:
        return False


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    limit = int(request["memory"]) + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import _jsonnet  # the reference implementation's binding (PyPI: jsonnet)

    boundary = Path(request["boundary"])
    libs = [Path(p) for p in request["libs"]]

    def resolve(base: str, rel: str) -> tuple[str, bytes]:
        if os.path.isabs(rel):
            raise RuntimeError("an absolute import is refused; import files of the repository by relative path")
        for directory in [Path(base), *libs]:
            path = Path(os.path.normpath(directory / rel))
            if not _inside(path, boundary):
                if directory == Path(base):
                    raise RuntimeError("it is outside the repository")
                continue
            if path.is_file():
                if path.stat().st_size > MAX_FILE:
                    raise RuntimeError("larger than 32 MiB")
                return str(path), path.read_bytes()
        raise RuntimeError("no such file in the repository")

    answers = []
    for entry in request["entries"]:
        try:
            text = _jsonnet.evaluate_file(
                entry, import_callback=resolve, tla_vars=request["tla_vars"], tla_codes=request["tla_codes"],
                ext_vars=request["ext_vars"], ext_codes=request["ext_codes"],
            )  # fmt: skip
        except RuntimeError as e:
            answers.append({"entry": entry, "error": str(e)})
            break
        except MemoryError:
            answers.append({"entry": entry, "memory": True})
            break
        answers.append({"entry": entry, "text": text})
    sys.stdout.write(json.dumps(answers))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
