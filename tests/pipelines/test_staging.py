"""The staged job code: named by content only, so definitions do not depend on the checkout."""
from __future__ import annotations

from pathlib import Path

from pipelines.staging import content_hash, staged_steps_dir


def make_tree(root: Path) -> Path:
    (root / "steps" / "serving").mkdir(parents=True)
    (root / "steps" / "__init__.py").write_text("")
    (root / "steps" / "train.py").write_text("print('train')\n")
    (root / "steps" / "serving" / "inference.py").write_text("def input_handler(data, context): ...\n")
    return root / "steps"


def test_hash_ignores_python_caches_but_not_edits(tmp_path: Path) -> None:
    steps = make_tree(tmp_path)
    before = content_hash(steps)
    (steps / "__pycache__").mkdir()
    (steps / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00cache")
    assert content_hash(steps) == before
    (steps / "train.py").write_text("print('train v2')\n")
    assert content_hash(steps) != before


def test_two_checkouts_of_the_same_code_stage_to_one_folder(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "checkout-a")
    second = make_tree(tmp_path / "checkout-b")
    (second / "__pycache__").mkdir()
    (second / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00cache")
    cache = tmp_path / "cache"
    staged = staged_steps_dir(first, cache_root=cache)
    assert staged_steps_dir(second, cache_root=cache) == staged
    assert staged.name == "steps" and staged.parent.name == content_hash(first)
    assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()) == [
        "__init__.py", "serving/inference.py", "train.py",
    ]
