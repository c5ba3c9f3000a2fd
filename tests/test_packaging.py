"""A normal (non-editable) install ships every package and subpackage, the worker's modules and the lab entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _packages(root: Path) -> set[str]:
    return {str(p.parent.relative_to(root)).replace("/", ".") for top in ("grader", "reference", "labs")
            for p in (root / top).rglob("*.py") if "__pycache__" not in p.parts}


def test_non_editable_install_has_every_subpackage(tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                        "--target", str(target), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    missing = sorted(_packages(ROOT) - _packages(target))
    assert not missing, f"a normal install drops {missing}: pyproject's packages.find must include them"
    assert (target / "grader" / "sandbox" / "worker" / "main.py").is_file()
    eps = next(target.glob("*.dist-info/entry_points.txt")).read_text()
    assert 'lab321 = labs.lab321:LAB' in eps and "[lab_grader.labs]" in eps, eps
    assert "lab_grader_selfcheck = grader.course.selfcheck" in eps, eps
