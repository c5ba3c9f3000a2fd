"""The documentation: MkDocs builds it with --strict (a broken page link or anchor is an error), the
built site loads nothing from the internet, and no page, script or comment speaks of how the
project was built instead of what it is.

Without MkDocs the build is skipped, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOW = 'pip install -e ".[docs]" (MkDocs 1.6)'

# Words about the making of the project, not the project. Built from pieces so this file does not match itself.
MAKING = [re.compile(p, re.IGNORECASE) for p in (
    "device" + " tool", r"\blen" + r"t\b", r"\$" + r"OUT\b", "gpu" + "_session", "no GPU was " + "lent")]
# Pages and scripts are held to one more phrase; code may speak of a database's or pytest's sessions.
MAKING_IN_PROSE = MAKING + [re.compile(r"\bthe " + r"session\b", re.IGNORECASE)]
TEXT_SUFFIXES = {".py", ".sh", ".md", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".ini", ".json", ".sbatch", ".service"}
SKIP_PARTS = {".git", ".venv", ".gpu-venv", ".wheels", "build", "__pycache__", "node_modules"}


def _needs_mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: MkDocs is not installed, so the documentation cannot be checked: {HOW}")
        pytest.skip(f"MkDocs is not installed: {HOW}")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    _needs_mkdocs()
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                        str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, "mkdocs build --strict failed (a broken link, anchor or nav entry?):\n" + r.stdout + r.stderr
    return out


def test_docs_build_strict_with_every_page(site):
    pages = sorted(p.relative_to(ROOT / "docs").with_suffix(".html") for p in (ROOT / "docs").rglob("*.md"))
    assert pages, "no pages under docs/"
    missing = [str(p) for p in pages if not (site / p).is_file()]
    assert not missing, f"pages not built: {missing}"


def test_site_loads_nothing_from_the_internet(site):
    remote = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//""", re.IGNORECASE)
    offenders = [f"{p.relative_to(site)}: {m.group(0)}" for p in site.rglob("*.html")
                 for m in remote.finditer(p.read_text(encoding="utf-8"))]
    assert not offenders, "the site must work offline; remote resources:\n" + "\n".join(offenders[:10])


def test_broken_link_fails_the_build(tmp_path):
    """The check has teeth: a page linking to a missing page or anchor fails the strict build."""
    _needs_mkdocs()
    for link in ("missing.md", "index.md#no-such-heading"):
        docs = tmp_path / link.replace("#", "_") / "docs"
        docs.mkdir(parents=True)
        (docs / "index.md").write_text(f"# Home\n\nSee [there]({link}).\n")
        cfg = (ROOT / "mkdocs.yml").read_text()
        cfg = cfg[:cfg.index("\nnav:")] + "\n"  # this project's settings, without its page list
        (docs.parent / "mkdocs.yml").write_text(cfg)
        r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(docs.parent / "site")],
                           cwd=docs.parent, capture_output=True, text=True)
        assert r.returncode != 0, f"a link to {link} did not fail the strict build:\n{r.stderr}"


def _project_files() -> list[Path]:
    """The project's own text files: what git tracks or would track, else a walk without build outputs."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split("\n")
        files = [ROOT / f for f in out if f]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob("*") if not SKIP_PARTS & set(p.relative_to(ROOT).parts)]
    return [f for f in files if f.is_file() and (f.suffix in TEXT_SUFFIXES or f.name in ("lab", "run"))
            and f != Path(__file__).resolve()]


def _prose(f: Path) -> bool:
    rel = f.relative_to(ROOT)
    return (rel.parts[0] in ("docs", "benchmarks", "deploy", ".ci") or rel.name in ("README.md", "mkdocs.yml", "lab")
            or f.suffix in (".sh", ".md"))


def test_the_project_speaks_of_itself_only():
    hits = []
    for f in _project_files():
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in (MAKING_IN_PROSE if _prose(f) else MAKING)):
                hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not hits, ("these lines speak of how the project was built, not of the project; say what the "
                      "project does (e.g. the GPU runbook for an offline node):\n" + "\n".join(hits))
