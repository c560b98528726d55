"""A clean, content-addressed copy of the job code (`steps/`) for the SDK to hash and upload.

The SDK names each step's code upload by a hash of the *paths and files* it is given. Handing it
the working tree directly would make that hash (and so the definition and the step cache key)
depend on the checkout's location and on whatever `__pycache__` folders Python left behind, and
would ship those caches to the jobs. Staging the sources under a path derived from their content
alone makes two builds of the same code identical on any machine.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

STEPS_DIR = Path(__file__).resolve().parents[1] / "steps"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


def source_files(root: Path) -> list[Path]:
    """The files that travel to the jobs, in a stable order (no caches, no hidden files)."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not any(part == "__pycache__" or part.startswith(".") for part in path.relative_to(root).parts)
        and path.suffix not in (".pyc", ".pyo")
    )


def content_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def staged_steps_dir(root: Path | None = None, cache_root: Path | None = None) -> Path:
    """`<tmp>/samay-code/<content-hash>/steps`: a copy of `root`, created once per content.

    The folder is named `steps` so that passing it both as `source_dir` and in `dependencies`
    puts the entry scripts at the code root and a `steps/` package beside them (the container
    imports `from steps.features import ...`).
    """
    root = root or STEPS_DIR
    base = (cache_root or Path(tempfile.gettempdir()) / "samay-code") / content_hash(root)
    target = base / "steps"
    if not target.is_dir():
        base.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=base, prefix=".staging-"))
        shutil.copytree(root, scratch / "steps", ignore=_IGNORED)
        try:
            os.replace(scratch / "steps", target)
        except OSError:
            if not target.is_dir():  # another process won the race with identical content otherwise
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target
