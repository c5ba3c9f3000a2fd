"""The course end to end: notebook sources, nbgrader, trusted grading, self-check, CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot
import pytest
import torch

import reference as R
from labs.lab321 import answers as A
from grader.course import demo
from helpers import FULL, ROOT, SOURCE, build, solution_cells, write_notebook

matplotlib.use("Agg")
LAB = "lab321"
TOTAL = sum(FULL.values())
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}

# Each typical mistake breaks these checks and no others (the demo writes these submissions).
MISTAKE_FAILS = {
    "snr_20log10": {"snr_known_value", "snr_gaussian_int8_example", "snr_gaussian_int8", "snr_half_amplitude_example",
                    "snr_half_amplitude", "snr_2d_example", "snr_any_shape", "snr_by_format_example", "snr_by_format"},
    "snr_amplitude": {"snr_known_value", "snr_gaussian_int8_example", "snr_gaussian_int8", "snr_half_amplitude_example",
                      "snr_half_amplitude", "snr_2d_example", "snr_any_shape", "snr_by_format_example", "snr_by_format"},
    "snr_swapped": {"snr_known_value", "snr_half_amplitude_example", "snr_half_amplitude", "snr_2d_example",
                    "snr_any_shape", "snr_by_format_example", "snr_by_format"},
    "memory_gib": {"memory_34b_inference", "memory_inference_values", "memory_7b_training", "memory_training_values"},
    "memory_no_headroom": {"memory_34b_inference", "memory_inference_values"},
    "memory_training_x4": {"memory_7b_training", "memory_training_values"},
    "advisor_fp4_training": {"advisor_training_no_fp4", "advisor_training"},
    "advisor_fp32_training": {"advisor_training_no_fp4", "advisor_training"},
    "advisor_ignores_budget": {"advisor_custom_budget_16gb", "advisor_custom_budget"},
    "weights_per_tensor": {"per_channel_public", "per_channel_minilm_example", "per_channel_minilm", "per_channel_edge"},
}


def test_source_notebook_is_built_from_build_lab():
    r = subprocess.run([sys.executable, str(ROOT / "source" / "build_lab.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _build_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_lab", ROOT / "source" / "build_lab.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_jupytext_pair_is_what_jupyter_would_save(tmp_path):
    """Saving the .ipynb in JupyterLab (jupytext, with source/jupytext.toml) writes the committed .py unchanged,
    and the .py read back gives the same cells: the pair is in jupytext's own canonical form."""
    import jupytext
    from jupytext.config import load_jupytext_configuration_file

    import nbformat as _nbf
    assert _nbf.writes(_build_module().build()) == SOURCE.read_text(), \
        "lab321.py and lab321.ipynb differ: run .venv/bin/python source/build_lab.py (after editing either)"
    cfg = load_jupytext_configuration_file(str(ROOT / "source" / "jupytext.toml"))
    assert "ipynb,py:percent" in cfg.formats
    shutil.copytree(ROOT / "source", tmp_path / "source")
    (tmp_path / "source" / LAB / f"{LAB}.py").unlink()
    r = subprocess.run([str(Path(sys.executable).parent / "jupytext"), "--sync", f"{LAB}/{LAB}.ipynb"],
                       cwd=tmp_path / "source", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    saved = (tmp_path / "source" / LAB / f"{LAB}.py").read_text()
    assert saved == (SOURCE.parent / f"{LAB}.py").read_text(), "lab321.py is not in jupytext's canonical form"
    import nbformat
    ipynb = nbformat.read(SOURCE, as_version=4)
    back = jupytext.reads(saved, fmt="py:percent")
    assert [(c.cell_type, c.source, dict(c.metadata)) for c in back.cells] == \
        [(c.cell_type, c.source, dict(c.metadata)) for c in ipynb.cells]


def test_cell_ids_are_stable_when_a_cell_is_inserted():
    mod = _build_module()
    text = (SOURCE.parent / f"{LAB}.py").read_text()
    before = [c.id for c in mod.build(text).cells]
    assert len(set(before)) == len(before)
    marker = "\n# %% [markdown]\n# ## Part 1"
    assert marker in text
    after = [c.id for c in mod.build(text.replace(marker, "\n# %%\nprint('a new cell')\n" + marker, 1)).cells]
    assert len(after) == len(before) + 1
    new = [i for i in after if i not in before]
    assert len(new) == 1 and [i for i in after if i != new[0]] == before
    graded = {c.metadata["nbgrader"]["grade_id"]: c.id for c in mod.build(text).cells if "nbgrader" in c.metadata}
    assert all(gid == cid for gid, cid in graded.items())


def test_build_refuses_grade_points_that_differ_from_the_checks():
    mod = _build_module()
    text = (SOURCE.parent / f"{LAB}.py").read_text()
    bad = re.sub(r'("grade_id": "memory", "locked": true, "points": )[0-9.]+', r"\g<1>10.0", text, count=1)
    assert bad != text
    with pytest.raises(SystemExit, match="worth 10 points but its checks give"):
        mod.build(bad)


@pytest.fixture(scope="module")
def teaching():
    """The notebook's teaching functions, from running the instructor notebook's cells."""
    ns: dict = {}
    plt_show = matplotlib.pyplot.show
    matplotlib.pyplot.show = lambda *a, **k: None
    try:
        for _, src in solution_cells():
            exec(compile(src, "<notebook>", "exec"), ns)
    finally:
        matplotlib.pyplot.show = plt_show
        matplotlib.pyplot.close("all")
    return ns


def test_teaching_casts_equal_reference_on_every_fp16_pattern(teaching):
    x = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
    for name in ("fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1"):
        ours, theirs = teaching["round_to_float"](x, name), R.cast(x, name)
        same = (ours == theirs) | (torch.isnan(ours) & torch.isnan(theirs))
        assert bool(same.all()), f"{name}: the notebook's round_to_float disagrees with reference.cast"


def test_teaching_constants_match_reference(teaching):
    for name, spec in teaching["FLOAT_FORMATS"].items():
        assert teaching["format_max"](*spec) == R.FORMATS[name].max, name
        assert teaching["format_min_normal"](*spec) == R.FORMATS[name].min_normal, name
    for cc in [(8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0), (12, 1)]:
        # the notebook uses the lab's short names (fp8_e4m3): aliases of reference's torch-style names
        assert tuple(R.canonical_name(n) for n in teaching["native_formats"](cc)) == R.native_formats(cc), cc


@pytest.mark.parametrize("seed", [0, 1])
def test_teaching_quantizers_match_reference(teaching, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 256, generator=g) * torch.exp2(torch.randint(-8, 8, (64, 1), generator=g).float())
    pairs = [
        (teaching["symmetric_quantize"](x, 8), R.fake_quantize(x, "int8")),
        (teaching["symmetric_quantize"](x, 4), R.fake_quantize(x, "int4")),
        (teaching["asymmetric_quantize"](x + 1, 8), R.fake_quantize(x + 1, "int8", symmetric=False)),
        (teaching["asymmetric_quantize"](x, 4), R.fake_quantize(x, "int4", symmetric=False)),
        (teaching["fp8_quantize"](x), R.fake_quantize(x, "fp8_e4m3")),
        (teaching["fp8_quantize"](x, "fp8_e5m2"), R.fake_quantize(x, "fp8_e5m2")),
        (teaching["fp8_quantize"](x, "fp4_e2m1"), R.fake_quantize(x, "fp4_e2m1")),
        (teaching["nvfp4_quantize"](x), R.fake_quantize(x, "nvfp4")),
        (teaching["mxfp4_quantize"](x), R.fake_quantize(x, "mxfp4")),
    ]
    for i, (ours, theirs) in enumerate(pairs):
        assert torch.equal(ours, theirs), f"teaching quantizer #{i} disagrees with reference"


def test_teaching_lab_answers_match_reference(teaching):
    for size in (1, 7, 34, 70, 123.4):
        for task in ("inference", "training"):
            got, want = teaching["analyze_model_memory"](size, 100, task), A.analyze_model_memory(size, 100, task)
            assert got["recommendation"] == want["recommendation"]
            for p, row in want["precisions"].items():
                assert got["precisions"][p]["fits"] == row["fits"]
                assert got["precisions"][p]["memory_gb"] == pytest.approx(row["memory_gb"])
            for prio in ("quality", "balanced", "memory"):
                a, b = teaching["recommend_precision"](size, 100, task, prio), A.recommend_precision(size, 100, task, prio)
                assert (a["precision"], a["fits"]) == (b["precision"], b["fits"])
                assert a["memory_gb"] == pytest.approx(b["memory_gb"])
    x = torch.randn(4096)
    assert teaching["calculate_snr"](x, R.fake_quantize(x, "int4")) == pytest.approx(R.calculate_snr(x, R.fake_quantize(x, "int4")))
    assert teaching["BEST_FORMAT_FOR_GAUSSIAN"] == "int8"


def test_notebook_states_no_known_errors():
    text = SOURCE.read_text()
    for wrong in ("<0.1% accuracy loss on", "<0.1% quality loss", "~240 representable", "Blackwell exclusive",
                  "FP8 native: No (emulation only)", "FP formats often win",
                  "FP8 tensor cores arrived with Ada, not with Hopper"):
        assert wrong not in text, wrong
    assert "448" in text and "Ada" in text


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A demo course: generated assignment, model/stub/mistake submissions, autograded with nbgrader."""
    root = tmp_path_factory.mktemp("course")
    demo.copy_course(root)
    for step in (["generate_assignment", LAB, "--force"],):
        subprocess.run([sys.executable, "-m", "nbgrader", *step], cwd=root, env=ENV, check=True, capture_output=True)
    release = root / "assignments" / LAB / f"{LAB}.ipynb"
    for sid, (_, sources) in demo.submissions("lab321").items():
        demo.write_submission(release, root / "submitted" / sid / LAB / f"{LAB}.ipynb", sources)
    for sid, cells in ATTACKERS.items():
        write_notebook(cells(root), root / "submitted" / sid / LAB / f"{LAB}.ipynb")
    _write_xss_attacker(release, root / "submitted" / "attacker_xss" / LAB / f"{LAB}.ipynb")
    r = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", LAB, "--force"], cwd=root,
                       env={**ENV, "LAB_GRADER_JOBS": "2"}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    (root / "autograde.log").write_text(r.stderr)
    r = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", LAB, "--force"], cwd=root, env=ENV,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return root


def _course_attack(root: Path) -> list[str]:
    return build(append=f'''
import glob, os, sqlite3
STOLEN = []
for p in [{str(root)!r} + "/gradebook.db", "../../../gradebook.db", "/proc/1/cwd/gradebook.db"] + glob.glob("/**/gradebook.db", recursive=False):
    try:
        STOLEN.append(sqlite3.connect(p).execute("select count(*) from grade").fetchone())
    except Exception:
        pass
for p in [{str(root)!r} + "/PWNED", {str(root)!r} + "/submitted/model_solution/lab321/lab321.ipynb"]:
    try:
        open(p, "w").write("pwned")
    except OSError:
        pass
try:
    os.remove({str(root)!r} + "/gradebook.db")
except OSError:
    pass
''')


ATTACKERS = {
    "attacker_course_files": _course_attack,
    "attacker_exits": lambda root: build(append="import os\nos._exit(0)\n"),
    "attacker_kills_parent": lambda root: build(append="import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"),
    "attacker_forges_output": lambda root: build(replace={"snr_solution": "def calculate_snr(a, b):\n    return 0.0\n"},
                                                 append="print('All tests passed! 18/18')\n"
                                                 "print('Exercise 3: 6 / 6 points (graded by the trusted grader)')\n"
                                                 "print('  [PASS] snr_known_value (public check, 1 pt)')\n"),
}


XSS = {"script": "<script>alert('ta')</script>", "handler": '<img src=x onerror="alert(1)">',
       "link": "[click](javascript:alert(2))", "svg": '<svg onload="alert(3)"></svg>',
       "iframe": '<iframe src="/api/contents"></iframe>'}
XSS_MARKERS = ("<script", "onerror", "javascript:", "onload", "<iframe", "alert(")


def _write_xss_attacker(release: Path, dest: Path) -> None:
    import nbformat

    demo.write_submission(release, dest, demo.solution_sources("lab321"))
    nb = nbformat.read(dest, as_version=4)
    md = nbformat.v4.new_markdown_cell("My answer.\n\n" + "\n\n".join(XSS.values()) + "\n\n![pic](attachment:x.svg)")
    md.attachments = {"x.svg": {"image/svg+xml": "PHN2ZyBvbmxvYWQ9ImFsZXJ0KDQpIj48L3N2Zz4="}}
    raw = nbformat.v4.new_raw_cell("<script>alert('raw')</script>")
    raw.metadata["format"] = "text/html"
    nb.cells += [md, raw]
    nbformat.write(nb, dest)


def test_student_html_reaches_the_ta_sanitized(course):
    """Autograded notebook (what the formgrader shows) and feedback HTML carry no active content
    from the student; the instructor's own cells are unchanged; the student's text is still there."""
    book = demo.gradebook_scores(course, "lab321")
    assert book["attacker_xss"] == FULL
    auto = (course / "autograded" / "attacker_xss" / LAB / f"{LAB}.ipynb").read_text()
    feedback = (course / "feedback" / "attacker_xss" / LAB / f"{LAB}.html").read_text()
    cells = json.loads(auto)["cells"]
    student_md = [c for c in cells if c["cell_type"] in ("markdown", "raw") and "My answer" in "".join(c["source"])]
    assert student_md, "the student's own text is kept"
    for c in cells:
        text = json.dumps(c)
        if "My answer" in text or c["cell_type"] == "raw":
            assert not any(m in text for m in XSS_MARKERS), text[:500]
    body = feedback.split("<body", 1)[1]
    assert "My answer" in body
    for m in XSS_MARKERS:
        assert m not in body.replace("javascript:void", ""), m
    src = json.loads((course / "source" / LAB / f"{LAB}.ipynb").read_text())
    src_md = {"".join(c["source"]) for c in src["cells"] if c["cell_type"] == "markdown"}
    kept = {"".join(c["source"]) for c in cells if c["cell_type"] == "markdown"}
    assert len(src_md & kept) >= len(src_md) - 1, "the instructor's markdown cells are kept verbatim"


def test_class_with_attackers_grades_honest_students_unchanged(course):
    import sqlite3

    book = demo.gradebook_scores(course, "lab321")
    assert book["model_solution"] == FULL, "an attacker changed an honest student's score"
    assert set(ATTACKERS) <= set(book), "the batch stopped at an attacker"
    assert book["attacker_course_files"] == FULL  # its own answers are right; its attacks found nothing
    assert book["attacker_exits"] == FULL  # the cell that exits is skipped: it costs only itself
    assert book["attacker_forges_output"]["snr"] == 0.0  # garbage SNR and a constant best format: nothing
    import nbformat
    forged = nbformat.read(course / "autograded" / "attacker_forges_output" / LAB / f"{LAB}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in forged.cells if c.cell_type == "code"
                      and not c.metadata.get("nbgrader", {}).get("grade") for o in c.get("outputs", []))
    assert "All tests passed" in printed, "what the notebook printed is still shown"
    assert "[PASS]" not in printed and "trusted grader" not in printed, printed
    assert not (course / "PWNED").exists()
    assert "pwned" not in (course / "submitted" / "model_solution" / LAB / f"{LAB}.ipynb").read_text()
    con = sqlite3.connect(course / "gradebook.db")
    assert con.execute("select count(*) from student").fetchone()[0] == len(demo.submissions("lab321")) + len(ATTACKERS) + 1
    assert not sandbox_processes(), "a sandbox process outlived nbgrader autograde"


def sandbox_processes(mine: bool = False) -> list[str]:
    """Command lines of sandbox processes (zygote, keeper, notebook; they name the worker's file) that
    no live grader owns any more (leaked), or with ``mine`` those this test process started."""
    from grader.sandbox.client import WORKER_MAIN

    marker = str(WORKER_MAIN)
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in ps.splitlines() if len(line.split(None, 2)) == 3]
    parent = {int(pid): int(ppid) for pid, ppid, _ in rows}

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parent.get(pid, 1)
        return False

    cmd = {int(pid): args for pid, _, args in rows}

    def orphaned(pid: int) -> bool:  # no live grader above it: only sandbox processes up to init
        pid = parent.get(pid, 1)
        while pid > 1:
            if marker not in cmd.get(pid, ""):
                return False
            pid = parent.get(pid, 1)
        return True

    return [args[:120] for pid, _, args in rows if marker in args
            and (ours(int(pid)) if mine else orphaned(int(pid)))]


@pytest.mark.slow
def test_sandbox_processes_are_found_by_their_command_line():
    """The check above can fail: a live sandbox is found by its command line."""
    from grader.sandbox import Sandbox

    with Sandbox(["x = 1"]) as sb:
        sb.wait_ready()
        assert sandbox_processes(mine=True), "a live sandbox's processes were not found by their command line"


def test_autograde_grades_ahead_in_parallel(course):
    log = (course / "autograde.log").read_text()
    assert log.count("(prefetched in parallel)") >= len(demo.submissions("lab321")), log[-2000:]


def test_committed_student_version_equals_fresh_generation(course):
    fresh = json.loads((course / "assignments" / LAB / f"{LAB}.ipynb").read_text())
    committed = json.loads((ROOT / "assignments" / LAB / f"{LAB}.ipynb").read_text())
    assert fresh == committed, "assignments/ is stale: run `nbgrader generate_assignment lab321 --force`"
    text = json.dumps(committed)
    assert "BEGIN SOLUTION" not in text and "10 * torch.log10(original" not in text
    released = sorted(p.name for p in (course / "assignments" / LAB).iterdir())
    assert released == [f"{LAB}.ipynb"], f"only the student notebook is released (the .py source has solutions): {released}"


def _grade_json(path: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "grader", "grade", str(path), "--json", "--course", str(path.parents[3])],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, "--json must print exactly one JSON object"
    return json.loads(lines[0])


def test_nbgrader_and_cli_agree_and_mistakes_cost_only_their_checks(course):
    book = demo.gradebook_scores(course, "lab321")
    for sid in [*demo.submissions("lab321"), "attacker_course_files"]:
        if sid.startswith("attacker"):
            rep = _grade_json(course / "submitted" / sid / LAB / f"{LAB}.ipynb")
            assert book[sid] == {k: e["score"] for k, e in rep["exercises"].items()}
            continue
        rep = _grade_json(course / "submitted" / sid / LAB / f"{LAB}.ipynb")
        assert set(rep) >= {"total", "max_total", "exercises"} and rep["max_total"] == TOTAL
        for ex, e in rep["exercises"].items():
            assert set(e) >= {"score", "max_score", "checks"}
            assert all(set(c) == {"name", "passed", "points", "message"} for c in e["checks"])
            assert book[sid][ex] == pytest.approx(e["score"]), f"{sid}/{ex}: nbgrader and python -m grader disagree"
        failed = {c["name"] for e in rep["exercises"].values() for c in e["checks"] if not c["passed"]}
        lost = sum(_points(name) for name in failed)
        if sid == "model_solution":
            assert failed == set() and rep["total"] == TOTAL
        elif sid == "untouched_stubs":
            assert rep["total"] == 0.0
            from labs.lab321 import LAB as _LAB
            hidden = {c.name for c in _LAB.exercises.checks if c.hidden}  # a failed hidden check shows only its fixed text
            assert all("not implemented yet" in c["message"] for e in rep["exercises"].values() for c in e["checks"]
                       if c["name"] not in hidden)
        else:
            assert failed == MISTAKE_FAILS[sid], sid
            assert rep["total"] == pytest.approx(TOTAL - lost)


def _points(name: str) -> float:
    from labs.lab321 import LAB as LAB321
    CHECKS = LAB321.exercises.checks
    return next(c.points for c in CHECKS if c.name == name)


def test_feedback_shows_no_hidden_grader_code(course):
    hidden_lines = set()
    check_files = sorted((ROOT / "labs").glob("*/checks/*.py"))
    assert check_files, "the labs' check modules were not found"
    for f in check_files:
        for line in f.read_text().splitlines():
            line = line.strip()
            if len(line) > 25 and not line.startswith(("#", '"""', "from ", "import ")) and "Fail(" not in line:
                hidden_lines.add(line)
    for html in (course / "feedback").rglob("*.html"):
        text = html.read_text()
        assert "[PASS]" in text or "[FAIL]" in text, f"{html}: no trusted feedback in the grade cells"
        for line in hidden_lines:
            assert line not in text, f"{html} shows grader code: {line}"


def test_feedback_lines_fit_the_formgrader(course):
    """The formgrader and the feedback HTML show a grade cell's output in a <pre> that does not wrap:
    every line the trusted grader writes there fits in 100 columns, and each check's line is all there."""
    import nbformat
    from grader.grading.grade import CONTINUED, FEEDBACK_WIDTH, check_line, grade_path

    sid = "snr_swapped"
    nb = nbformat.read(course / "autograded" / sid / LAB / f"{LAB}.ipynb", as_version=4)
    shown = ""
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            for out in cell.get("outputs", []):
                text = out.get("text", "")
                assert all(len(line) <= FEEDBACK_WIDTH for line in text.splitlines()), text
                shown += text
    squash = lambda t: re.sub(r"\s+", " ", re.sub(r"\n" + re.escape(CONTINUED), " ", t))  # noqa: E731
    from grader import config
    report = grade_path(course / "submitted" / sid / LAB / f"{LAB}.ipynb", lab="lab321", settings=config.load(course))
    failed = [c for e in report.exercises.values() for c in e.checks if not c.passed]
    assert failed and any(len(check_line(c)) > FEEDBACK_WIDTH for c in failed)
    for e in report.exercises.values():
        for c in e.checks:
            assert squash(check_line(c)) in squash(shown)


def _selfcheck(tmp_path: Path, sources) -> subprocess.CompletedProcess:
    a = tmp_path / "assignments"
    (a / LAB).mkdir(parents=True)
    shutil.copy(ROOT / "assignments" / "conftest.py", a / "conftest.py")
    shutil.copy(ROOT / "course_config.py", tmp_path / "course_config.py")
    demo.write_submission(ROOT / "assignments" / LAB / f"{LAB}.ipynb", a / LAB / f"{LAB}.ipynb", sources)
    return subprocess.run([sys.executable, "-m", "pytest", "assignments/", "-p", "no:cacheprovider"],
                          cwd=tmp_path, capture_output=True, text=True, env=ENV)


def test_selfcheck_model_solution_passes_with_honest_banner(tmp_path):
    r = _selfcheck(tmp_path, demo.solution_sources("lab321"))
    assert r.returncode == 0, r.stdout[-3000:]
    from labs.lab321 import LAB as LAB321; CONTRACT = LAB321.exercises.contract  # noqa: E702
    public = sum(ex.public_points for ex in CONTRACT.values())
    assert f"public checks: {public:g} of {public:g} points passed" in r.stdout, r.stdout[-2000:]
    assert f"Hidden checks worth {TOTAL - public:g} more points were NOT run" in r.stdout
    assert r.stdout.count("self-check: lab321.ipynb") == 1  # the conftest and the installed plugin: once


def test_selfcheck_tells_stubs_from_wrong_answers(tmp_path):
    from labs.lab321 import LAB as LAB321
    sources = LAB321.mistakes["snr_swapped"][1](demo.solution_sources("lab321"))
    del sources["memory_solution"]  # leave Exercise 2 as the stub
    r = _selfcheck(tmp_path, sources)
    assert r.returncode == 1
    assert "NOT IMPLEMENTED YET: memory" in r.stdout
    assert "WRONG: calculate_snr on original [3, 4], quantized [3, 3]" in r.stdout


def test_selfcheck_anywhere_one_heading_per_notebook_and_syntax_errors(tmp_path):
    """A notebook fetched through the exchange: no conftest.py, no course_config.py, any folder; a
    Jupyter duplicate next to it with a SyntaxError in Exercise 2's cell (line 10 of that cell)."""
    release = ROOT / "assignments" / LAB / f"{LAB}.ipynb"
    demo.write_submission(release, tmp_path / f"{LAB}.ipynb", demo.solution_sources("lab321"))
    broken = demo.solution_sources("lab321")
    src = broken["memory_solution"]
    assert src.splitlines()[9] == "    table = {}", "line 10 of the model solution's Exercise 2 cell"
    broken["memory_solution"] = src.replace("    table = {}\n", "    table = {\n", 1)
    demo.write_submission(release, tmp_path / f"{LAB}-Copy1.ipynb", broken)
    import nbformat
    code_cells = [c for c in nbformat.read(release, as_version=4).cells if c.cell_type == "code"]
    n = 1 + next(i for i, c in enumerate(code_cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "memory_solution")
    assert not any(p.name == "conftest.py" for p in tmp_path.rglob("*"))
    r = subprocess.run([sys.executable, "-m", "pytest", f"{LAB}.ipynb", f"{LAB}-Copy1.ipynb", "-p", "no:cacheprovider"],
                       cwd=tmp_path, capture_output=True, text=True, env=ENV)
    out = r.stdout
    assert r.returncode == 1, out[-3000:]
    from labs.lab321 import LAB as LAB321; CONTRACT = LAB321.exercises.contract  # noqa: E702
    public = sum(ex.public_points for ex in CONTRACT.values())
    memory_public = CONTRACT["memory"].public_points
    heads = [line for line in out.splitlines() if "self-check: " in line]
    assert len(heads) == 2 and f"self-check: {LAB}.ipynb " in heads[0] + " " and f"self-check: {LAB}-Copy1.ipynb" in heads[1]
    first, second = out.split(heads[1], 1)[0].split(heads[0], 1)[1], out.split(heads[1], 1)[1]
    assert f"public checks: {public:g} of {public:g} points passed (0 not implemented yet, 0 wrong)." in first
    assert f"public checks: {public - memory_public:g} of {public:g} points passed" in second  # per notebook, not summed
    # named as JupyterLab shows the cell (its heading and first line), never by a code cell count
    assert ('SYNTAX ERROR in the code cell starting "def analyze_model_memory(params_billions, memory_budget_g...'
            '" under "Exercise 2 (graded: `memory`): memory analysis as a function" (line 10): \'{\' was never closed'
            ) in second, second[-3000:]
    assert f"code cell {n}" not in out
    memory_public_checks = sum(not c.hidden for c in CONTRACT["memory"].checks)
    assert f"(0 not implemented yet, 0 wrong, {memory_public_checks} in cells with a syntax error)." in second
    assert "NOT IMPLEMENTED YET" not in out and "NameError" not in out
    assert f"{2 * public:g} of" not in out


def test_selfcheck_collects_no_notebook_for_the_test_suite(tmp_path):
    """`pytest tests` and `pytest` (testpaths) collect the test suite only; a folder walk collects only
    notebooks of this lab; a notebook named on the command line is always collected."""
    import nbformat
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_one.py").write_text("def test_one():\n    assert True\n")
    demo.write_submission(ROOT / "assignments" / LAB / f"{LAB}.ipynb", tmp_path / "tests" / f"{LAB}.ipynb",
                          demo.solution_sources("lab321"))
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "tests" / "other.ipynb")
    run = lambda *args: subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *args],
                                       cwd=tmp_path, capture_output=True, text=True, env=ENV).stdout
    assert "ipynb" not in run(), "testpaths: no notebooks"
    walked = run("tests")  # not the repository's tests/: a folder walk finds the lab's notebook only
    assert f"{LAB}.ipynb::memory::memory_34b_inference" in walked and "other.ipynb" not in walked
    assert "ipynb" not in subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider",
                                          "tests/test_lab321_answers.py", "tests"], cwd=ROOT, capture_output=True,
                                         text=True, env=ENV).stdout
    from grader.course import selfcheck
    assert selfcheck.REPO_TESTS == ROOT / "tests"
    named = run("tests/other.ipynb")  # named on the command line: collected; with two labs it says which could be
    assert "other.ipynb" in named and "no lab of this course (lab321, lab322)" in named, named


def test_notebook_e4m3_grid_has_every_value(teaching):
    """The value-grid plot shows every non-negative E4M3 value (127: zero, 7 subnormals, 119 normals),
    counted independently with ml_dtypes."""
    import ml_dtypes
    import numpy as np

    every = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    want = np.unique(every[np.isfinite(every) & (every >= 0)])
    assert len(want) == 127
    got = teaching["levels"].double().numpy()
    assert np.array_equal(np.sort(got), want)


def test_notebook_four_bit_control_supports_its_sentence(teaching):
    """The text says: with NVFP4's own blocks and E4M3 scales (4.5 bits), INT4 beats NVFP4 on Gaussian
    weights, so the blocks, not the FP4 element, make the difference."""
    w = teaching["w"]
    snr = teaching["FOUR_BIT_SNR"]
    nv = float(R.calculate_snr(w, R.fake_quantize(w, "nvfp4")))
    assert abs(snr["NVFP4 (16, E4M3)"] - nv) < 1e-6  # the notebook's NVFP4 is the reference's
    assert snr["INT4 (16, E4M3)"] > snr["NVFP4 (16, E4M3)"] > snr["INT4 per-tensor"]
    q = teaching["int4_block_quantize"](w).reshape(-1, 16)
    for block in q[:256]:
        assert block.unique().numel() <= 15  # at most 15 levels per block: -7..7 times one scale
