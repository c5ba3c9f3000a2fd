"""The formgrader in a real browser: a TA starts `./lab jupyter` (without activating .venv) on a
demo course, opens the formgrader and sees the trusted scores and per-check feedback of a student.

Playwright drives Debian's Chromium (Playwright's own browser download needs the internet);
`./lab test` installs chromium when run as root. Without chromium or playwright the test is
skipped, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from grader import config
from grader.course import demo
from grader.grading.grade import CONTINUED, check_line, grade_path
from helpers import ROOT

LAB = "lab321"
MISTAKE = "snr_swapped"  # one typical mistake: the signal power taken from the quantized tensor
STUDENTS = ("model_solution", MISTAKE)
VENV_BIN = os.path.dirname(sys.executable)
HOW = ("run `./lab test` as root (it installs Debian's chromium), or `apt-get install chromium` and "
       "`pip install -e '.[test]'` (playwright)")


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: {what}, so the formgrader's browser test cannot run: {HOW}")
    pytest.skip(f"{what}: {HOW}")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        _missing("no chromium on PATH")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed")
    return path


def _run(course: Path, *args: str) -> None:
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""), "LAB_GRADER_JOBS": "2"}
    r = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def course(chromium, tmp_path_factory) -> Path:
    """The demo course with two submissions, the model solution and one typical mistake, autograded."""
    root = tmp_path_factory.mktemp("fgcourse")
    demo.copy_course(root)
    _run(root, "generate_assignment", LAB, "--force")
    release = root / "assignments" / LAB / f"{LAB}.ipynb"
    subs = demo.submissions("lab321")
    for sid in STUDENTS:
        demo.write_submission(release, root / "submitted" / sid / LAB / f"{LAB}.ipynb", subs[sid][1])
    _run(root, "autograde", LAB, "--force")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(course, tmp_path_factory):
    """`./lab jupyter` started in the course folder as a TA would, with no .venv on PATH."""
    port, token = _free_port(), secrets.token_hex(16)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                           if p and Path(p).resolve() != Path(VENV_BIN).resolve())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    home = tmp_path_factory.mktemp("jupyter")
    env.update(PATH=path, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    assert shutil.which("nbgrader", path=path) != str(Path(VENV_BIN) / "nbgrader")
    args = ["bash", str(ROOT / "lab"), "jupyter", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}"]  # as root too: lab adds --allow-root
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a few seconds; more if `lab` must first (re)install .venv
        while True:
            if proc.poll() is not None:
                pytest.fail(f"./lab jupyter exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                req = urllib.request.Request(f"{base}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"./lab jupyter not ready in 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base, token, log
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _score_cell(page, row_text: str, column: int) -> tuple[float, float]:
    """(score, max) shown as "score / max" in a formgrader table's row."""
    cell = page.locator("tbody tr", has_text=row_text).first.locator("td").nth(column)
    m = re.fullmatch(r"\s*([\d.]+) / ([\d.]+)\s*", cell.inner_text())
    assert m, f"no score in {row_text}'s row: {cell.inner_text()!r}"
    return float(m.group(1)), float(m.group(2))


def test_formgrader_shows_trusted_scores_and_per_check_feedback(course, server, chromium, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, token, log = server
    settings = config.load(course)
    trusted = grade_path(course / "submitted" / MISTAKE / LAB / f"{LAB}.ipynb", lab="lab321", settings=settings)
    book = demo.gradebook_scores(course, "lab321")
    assert book[MISTAKE] == pytest.approx({k: e.score for k, e in trusted.exercises.items()})
    assert 0 < trusted.total < trusted.max_total, "the mistake student must lose some points, not all"
    failed = [c for e in trusted.exercises.values() for c in e.checks if not c.passed]
    assert failed and all(c.message for c in failed)
    shown = lambda x: pytest.approx(round(x, 2))  # noqa: E731 - the formgrader rounds to 2 decimals

    server_errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"], timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.set_default_navigation_timeout(30_000)
            # only the local server: the submission page asks a CDN for MathJax, which would hang offline
            page.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"),
                       lambda route: (outside.append(route.request.url), route.abort()))
            page.on("response", lambda r: server_errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)

            page.goto(f"{base}/formgrader?token={token}")  # the link `jupyter lab` prints; the token sets a cookie
            expect(page.locator("tbody tr", has_text=LAB).first).to_be_visible()
            # the course owns its exchange: created when the server starts, so Release/Collect work
            assert page.locator("#warning-exchange").count() == 0, "the formgrader says the exchange is missing"
            assert (course / "exchange").is_dir()
            page.get_by_role("link", name="Manage Students").click()
            page.wait_for_url("**/formgrader/manage_students")
            expect(page.locator("tbody tr", has_text=MISTAKE)).to_be_visible()
            assert _score_cell(page, MISTAKE, 3) == (shown(trusted.total), shown(trusted.max_total))
            assert _score_cell(page, "model_solution", 3) == (shown(trusted.max_total), shown(trusted.max_total))

            page.locator("tbody tr", has_text=MISTAKE).get_by_role("link").first.click()
            page.wait_for_url(f"**/formgrader/manage_students/{MISTAKE}")
            expect(page.locator("tbody tr", has_text=LAB)).to_be_visible()
            assert _score_cell(page, LAB, 1) == (shown(trusted.total), shown(trusted.max_total))
            page.locator("tbody tr", has_text=LAB).get_by_role("link", name=LAB).click()
            page.wait_for_url(f"**/formgrader/manage_students/{MISTAKE}/{LAB}")
            expect(page.locator("tbody tr", has_text=LAB)).to_be_visible()
            assert _score_cell(page, LAB, 1) == (shown(trusted.total), shown(trusted.max_total))
            page.locator("tbody tr", has_text=LAB).get_by_role("link", name=LAB).click()
            page.wait_for_url("**/formgrader/submissions/*/")

            # the submission: each exercise's score box holds the trusted score ...
            for ex, e in trusted.exercises.items():
                box = page.locator(f"input.score#{ex}")
                expect(box).to_have_attribute("placeholder", re.compile(r"\d"))
                assert float(box.get_attribute("placeholder")) == pytest.approx(e.score), ex
            # ... and its grade cell shows every check, passed or failed, with the failure's message
            # wrapped lines continue after grader.grading.grade.CONTINUED: join them back before comparing
            text = _norm(re.sub(r"\n" + re.escape(CONTINUED), " ", page.inner_text("body")))
            for e in trusted.exercises.values():
                for c in e.checks:
                    assert _norm(check_line(c)) in text, f"not shown: {check_line(c)}"
            first = failed[0]
            line = page.get_by_text(f"[FAIL] {first.name} ", exact=False).first
            expect(line).to_be_visible()
            line.scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -200)")
            shot = tmp_path / "formgrader-submission.png"
            page.screenshot(path=str(shot))
            print(f"screenshot of {MISTAKE}'s submission in the formgrader: {shot}")
        finally:
            browser.close()
    assert not server_errors, f"server errors: {server_errors}\n{log.read_text()[-3000:]}"
    assert all("mathjax" in u.lower() for u in outside), f"unexpected outside requests: {outside}"
