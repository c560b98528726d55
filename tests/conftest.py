"""Fixtures shared by every test folder."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LUNG_SOUNDS = REPO_ROOT.parent / "shared" / "data" / "lung-sounds"

pytest_plugins = ["tests.fixtures.moto", "tests.fixtures.cloud", "tests.fixtures.browser", "tests.fixtures.models",
                  "tests.lambdas.runtime_stub"]


@pytest.fixture(scope="session")
def lung_sounds_dir() -> Path:
    """The real recordings in ../shared/data/lung-sounds (never copied into the repository)."""
    if not (LUNG_SOUNDS / "labels.csv").is_file():
        pytest.skip(f"real lung-sound data not found at {LUNG_SOUNDS} (it sits beside the repo in CI)")
    return LUNG_SOUNDS
