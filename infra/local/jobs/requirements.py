"""Is a `requirements.txt` satisfied by the running Python environment?

Containers `pip install` their requirements; locally the jobs and endpoints run on the user's own
virtual environment, which must not be changed behind their back. So requirements are checked, not
installed: a training job fails on an unmet one, an endpoint host warns.
"""
from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

logger = logging.getLogger(__name__)


def unmet_requirements(requirements_file: Path) -> list[str]:
    """One line per requirement the environment does not satisfy, e.g. "librosa (not installed)".

    pip options (`-r`, `--index-url`, ...) and comments are skipped; a line that is neither an
    option nor a valid requirement is reported as unmet, so a typo is never silently accepted.
    """
    unmet: list[str] = []
    for raw in requirements_file.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            unmet.append(f"{line} (not a valid requirement: {exc})")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{requirement} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{requirement} (installed {installed})")
    return unmet
