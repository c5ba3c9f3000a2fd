"""The `lab` script: paths on its command line are the caller's, as a newcomer types them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from helpers import ROOT

LAB = ROOT / "lab"


def _lab(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    return subprocess.run(["bash", str(LAB), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_check_and_grade_take_paths_relative_to_the_caller(tmp_path):
    sub = tmp_path / "mine"
    sub.mkdir()
    shutil.copy(ROOT / "assignments" / "lab321" / "lab321.ipynb", sub / "lab321.ipynb")  # untouched stubs
    r = _lab(tmp_path, "check", "mine/lab321.ipynb")
    assert "not found" not in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.returncode == 1 and "NOT IMPLEMENTED YET" in r.stdout, r.stdout[-2000:]
    r = _lab(tmp_path, "grade", "mine/lab321.ipynb", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["total"] == 0


def test_check_without_a_path_checks_the_released_notebook_from_anywhere(tmp_path):
    r = _lab(tmp_path, "check", "-q")
    assert "NOT IMPLEMENTED YET" in r.stdout and r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
