"""The self-check, a pytest plugin: ``pytest lab321.ipynb`` runs the public checks of its lab on a notebook.

Installed with the course package (``pip install`` registers it under the ``pytest11`` entry
point ``lab_grader_selfcheck``), so it works on any notebook path: in the checkout
(``pytest assignments/``, ``./lab check PATH``) or on a notebook fetched through nbgrader's
exchange, with no conftest.py near it.

Which notebooks are collected:

* a notebook named on the command line, always;
* notebooks found by walking a folder named on the command line (or the invocation folder),
  when they carry the grade cells of a lab of the course; never under the repository's own ``tests/``,
  never when the folders come from ``testpaths`` (``pytest`` / ``pytest tests`` run the
  project's test suite, not notebooks), never in ``.ipynb_checkpoints``.

A notebook's lab is found from its file name (``lab321.ipynb``, ``lab321-Copy1.ipynb``), else from
its grade cells' ids. Every notebook runs once in the sandbox the grader uses (shared by its tests); each public
check is one test. The summary has one heading per notebook with that notebook's own totals
(a Jupyter duplicate, ``lab321-Copy1.ipynb``, is its own notebook). A stub that still raises
NotImplementedError is reported as "not implemented yet", a cell that does not parse as
"SYNTAX ERROR in the code cell starting "<first line>" under "<heading>" (line L)" (JupyterLab shows
headings, not code cell numbers), a wrong answer as "wrong on <input>".

A submission is data (grader/studentfiles.py). Before pytest loads any conftest.py, the plugin
refuses to run when a student's file already has a say in this process (pytest read its
``pytest.ini``, a submission folder is on ``sys.path`` as ``python -m pytest`` run inside it puts
it there, or a module was imported from one), and otherwise ignores every other file of a
submission folder: no conftest.py is loaded when the run touches one (``--noconftest``), and
nothing but notebooks is collected there. One line says what was ignored or why it refused.
``./lab check`` never reads a student's config at all: it pins the course's own ini (``-c``) and
plugin, passes ``--noconftest`` and runs Python with ``-P`` (the current folder is not importable).
What pytest itself does before any plugin loads stays possible when plain ``pytest`` is pointed
into one student's folder: it reads that folder's ``pytest.ini``, whose ``addopts`` may load a
plugin from there (``pythonpath = .``) or turn this plugin off; so check a single submission
with ``./lab check``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_TESTS = Path(__file__).resolve().parents[2] / "tests"
_SESSIONS: dict[Path, object] = {}


@dataclass
class Tally:
    passed: float = 0.0
    public: float = 0.0
    hidden: float = 0.0
    todo: int = 0
    wrong: int = 0
    unparsed: int = 0  # checks of functions whose cell has a syntax error
    syntax: list[str] = field(default_factory=list)


_TALLY: dict[Path, Tally] = {}  # per notebook, in collection order


def _course_root(path: Path) -> Path:
    """The course whose settings apply: never a folder a student could have sent (a submitted
    course_config.py is data like the rest of the submission)."""
    from .. import studentfiles
    from ..config import CONFIG_NAME

    for d in studentfiles.trusted_parents(path):
        if (d / CONFIG_NAME).is_file():
            return d
    root = studentfiles.submission_root(path)
    return root.parent if root is not None else path.parent


_IGNORED: list[str] = []  # the line saying which student files this run ignored


def _scope(early_config: pytest.Config) -> list[Path]:
    """The paths this run will look at, as pytest will decide them (arguments, testpaths, or here)."""
    here = Path(early_config.invocation_params.dir)
    args = [str(a).split("::")[0] for a in early_config.known_args_namespace.file_or_dir or []]
    if args:
        return [here / a for a in args]
    testpaths = early_config.getini("testpaths")
    if testpaths:
        return [Path(early_config.rootpath) / t for t in testpaths]
    return [here]


def _refusal(early_config: pytest.Config) -> str | None:
    from .. import studentfiles as sf

    here = Path(early_config.invocation_params.dir)
    how = ("check a submission with `./lab check <notebook>` from the course folder: it uses the "
           "course's own pytest settings and never reads a student's")
    ini = early_config.inipath
    if ini is not None and sf.in_submission(ini):
        return (f"refusing to self-check: pytest read its settings from {sf.shown([ini], here)}, a file in a "
                f"student's submission (its options can run the student's code as you); {how}")
    path = sf.import_path_in_submissions()
    if path:
        return (f"refusing to self-check: the submission folder {sf.shown(path, here)} is on Python's import "
                f"path (`python -m pytest` run inside it puts it there), so any import could run a student's "
                f"file as you; {how}")
    ran = sf.imported_from_submissions()
    if ran:
        return (f"refusing to self-check: {sf.shown(ran, here)} from a student's submission was imported before "
                f"the self-check loaded (a student's pytest settings can do that); {how}")
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Before any conftest.py: refuse when a student's file already has a say, else ignore them all."""
    from .. import studentfiles as sf

    why = _refusal(early_config)
    if why:
        raise pytest.UsageError(f"self-check: {why}")
    scope = _scope(early_config)
    if any(_has_notebooks(p) for p in scope):
        _warm_sandbox()  # boots while pytest starts up and this process imports the labs
    found, touched = sf.scan(scope)
    if touched:
        early_config.known_args_namespace.noconftest = True
    _IGNORED.clear()
    if found:
        here = Path(early_config.invocation_params.dir)
        _IGNORED[:] = [f"self-check: ignored {len(found)} student file(s) that Python or pytest would run as "
                       f"you (a submission is data: only its notebook is checked, in the sandbox): "
                       f"{sf.shown(found, here)}"]


def pytest_ignore_collect(collection_path, config):
    """In a submission folder only notebooks are collected (a test_*.py there would run as you)."""
    from .. import studentfiles as sf

    p = Path(collection_path)
    if p.suffix != ".ipynb" and not p.is_dir() and sf.in_submission(p):
        return True
    return None


def pytest_sessionstart(session):
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    for line in _IGNORED:
        if tr is not None:
            tr.write_line(line)
        else:
            print(line, file=sys.stderr)


def _has_notebooks(path: Path) -> bool:
    """A notebook named, or one in a folder named (two levels deep), outside the repository's own tests/."""
    try:
        path = path.resolve()
        if path.is_relative_to(REPO_TESTS):
            return False
        if path.suffix == ".ipynb":
            return path.is_file()
        return path.is_dir() and any(True for pattern in ("*.ipynb", "*/*.ipynb") for _ in path.glob(pattern))
    except OSError:
        return False


_WARMING: list = []  # the thread that boots the sandbox's warm parent, once per run


def _warm_sandbox() -> None:
    """Boot the sandbox's warm parent (the process that imports torch, numpy and matplotlib once for every
    notebook) in the background as soon as a notebook is seen, so it boots while this process reads the
    course and imports the labs' checks (torch too); the notebook's masks and limits are set later, when
    :func:`_launch` starts the notebook from it. A failure here is left for the launch to report."""
    if _WARMING:
        return
    import threading

    from ..sandbox import zygote

    def boot():
        try:
            zygote()
        except Exception:  # noqa: BLE001 - Sandbox.launch starts it again and reports why it cannot
            pass

    t = threading.Thread(target=boot, name="self-check-warm-sandbox", daemon=True)
    _WARMING.append(t)
    t.start()


def _warm_references(lab, config) -> None:
    """Start the lab's ``warm`` (the public checks' reference values) in the background, once per lab, so it
    computes while the sandbox runs the notebook and the student's side of each check. A failure is left for
    the check that needs the value to report. At the end of the run the thread is told to stop and joined
    (``warm`` returns between two values): a thread left running in torch when Python exits aborts it."""
    if lab.warm is None or lab.id in _WARMED:
        return
    _WARMED.add(lab.id)
    import threading

    stop = threading.Event()

    def run():
        try:
            lab.warm(stop)
        except Exception:  # noqa: BLE001 - the check computes it again and reports why it cannot
            pass

    t = threading.Thread(target=run, name=f"self-check-warm-{lab.id}")
    t.start()

    def finish():
        stop.set()
        t.join()

    config.add_cleanup(finish)


_WARMED: set = set()


def _launch(path: Path):
    """Start the notebook's sandbox at collection time, so it runs while pytest goes on."""
    from .. import config
    from ..grading.nbfile import read_cells
    from ..sandbox import Sandbox

    if path not in _SESSIONS:
        settings = config.load(_course_root(path))
        from ..grading import teaching
        from ..grading.labs import UnknownLab, all_labs, lab_for_notebook

        all_labs(settings.course_root)  # every lab's trusted code joins the sandbox's masks
        cells = read_cells(path)
        try:  # the lab's teaching cells are left out, as when grading
            cells = teaching.without_teaching(cells, teaching.for_lab(lab_for_notebook(path, settings.course_root),
                                                                       settings.course_root))
        except UnknownLab:
            pass  # collect() says which lab is missing
        sb = Sandbox(cells, limits=settings.limits, level=settings.isolation,
                     course_root=settings.course_root)
        sb.launch()
        sb.hidden_seed = settings.hidden_seed  # the course config is read once per notebook
        _SESSIONS[path] = sb
    return _SESSIONS[path]


def _code_cells_with_places(path: Path) -> list[tuple[str, str]]:
    """(source, where) of each code cell; ``where`` names the cell as JupyterLab shows it: the nearest
    markdown heading above it and the cell's first line (JupyterLab numbers no cells)."""
    from ..grading.nbfile import read_cells

    sources = read_cells(path)  # the same code cells the sandbox runs (NotebookError if unreadable)
    try:
        raw = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        cells = [c for c in raw.get("cells", []) if isinstance(c, dict)]
    except (OSError, ValueError, AttributeError):
        cells = []
    headings, heading = [], ""
    for c in cells:
        src = c.get("source", "")
        src = "".join(map(str, src)) if isinstance(src, list) else str(src)
        if c.get("cell_type") == "markdown":
            for line in src.splitlines():
                if line.lstrip().startswith("#"):
                    heading = line.strip().lstrip("#").strip()
        elif c.get("cell_type") == "code":
            headings.append(heading)
    out = []
    for i, src in enumerate(sources):
        heading = headings[i] if len(headings) == len(sources) else ""
        first = next((line.strip() for line in src.splitlines() if line.strip()), "(empty)")
        first = first if len(first) <= 60 else first[:57] + "..."
        where = f'the code cell starting "{first}"'
        out.append((src, where + (f' under "{heading}"' if heading else " (above the first heading)")))
    return out


def syntax_errors(path: Path) -> list[str]:
    """'SYNTAX ERROR in the code cell starting "<its first line>" under "<heading>" (line L): message' for
    each code cell that does not parse (as IPython reads it: magics and ! lines are fine). Nothing is executed."""
    from IPython.core.inputtransformer2 import TransformerManager

    out = []
    tm = TransformerManager()
    for i, (src, where) in enumerate(_code_cells_with_places(path), 1):
        try:
            compile(tm.transform_cell(src), f"<code cell {i}>", "exec")
        except SyntaxError as exc:  # IndentationError and TabError included
            kind = "" if type(exc) is SyntaxError else f"{type(exc).__name__}: "
            lines = src.splitlines()
            lead = next((k for k, line in enumerate(lines) if line.strip()), 0)  # IPython drops leading blank lines
            line = exc.lineno + lead if exc.lineno else "?"
            out.append(f"SYNTAX ERROR in {where} (line {line}): {kind}{exc.msg}")
        except Exception:  # noqa: BLE001 - a transformer oddity: the sandbox will report the cell
            continue
    return out


def _is_lab_notebook(path: Path) -> bool:
    """A notebook of a lab of the course: one of its code cells is a grade cell of that lab's exercises."""
    from ..grading.labs import all_labs

    CONTRACT = {gid for lab in all_labs(_course_root(path)).values() for gid in lab.exercises.contract}

    try:
        nb = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        cells = nb.get("cells", []) if isinstance(nb, dict) else []
        return any(isinstance(c, dict) and isinstance(c.get("metadata"), dict)
                   and isinstance(c["metadata"].get("nbgrader"), dict)
                   and c["metadata"]["nbgrader"].get("grade_id") in CONTRACT for c in cells)
    except (OSError, ValueError, RecursionError):
        return True  # unreadable (or JSON nested too deeply): collect it, so the user is told why


def wanted(file_path: Path, config: pytest.Config) -> bool:
    """Whether the self-check collects this notebook (see the module's docstring)."""
    file_path = Path(file_path).resolve()
    if file_path.suffix != ".ipynb" or ".ipynb_checkpoints" in file_path.parts:
        return False
    here = Path(config.invocation_params.dir)
    explicit = {(here / str(a).split("::")[0]).resolve() for a in config.args}
    if file_path in explicit and config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return True
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS:
        return False  # `pytest` with the project's testpaths: the test suite, not notebooks
    if file_path.is_relative_to(REPO_TESTS):
        return False  # `pytest tests`: the project's own test suite
    return _is_lab_notebook(file_path)


class NotebookFile(pytest.File):
    def collect(self):
        path = Path(self.path)
        try:
            sb = _launch(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable notebook: say so once
            raise pytest.UsageError(f"{self.path}: {exc}") from None
        self.config.add_cleanup(sb.close)
        tally = _TALLY.setdefault(path, Tally())
        from ..grading.labs import lab_for_notebook  # imports torch (the lab's checks) while the sandbox boots
        try:
            tally.syntax = syntax_errors(path)
        except Exception:  # noqa: BLE001 - the sandbox reports what cannot be read
            tally.syntax = []
        from ..grading.labs import UnknownLab

        try:
            lab = lab_for_notebook(path, _course_root(path))
        except UnknownLab as exc:  # e.g. an empty notebook in a course with several labs: say so, check nothing
            raise self.CollectError(f"self-check: {exc}; name the lab's notebook <lab id>.ipynb") from None
        _warm_references(lab, self.config)
        for ex, checks in lab.exercises.by_exercise().items():
            for c in checks:
                if c.hidden:
                    tally.hidden += c.points
                    continue
                tally.public += c.points
                yield CheckItem.from_parent(self, name=f"{ex}::{c.name}", check=c)


class SelfCheckFailure(Exception):
    pass


class CheckItem(pytest.Item):
    def __init__(self, *, check, **kw):
        super().__init__(**kw)
        self.check = check

    def _sandbox(self):
        sb = _SESSIONS[Path(self.path)]
        sb.wait_ready()
        return sb

    def runtest(self):
        from ..grading.grade import run_check

        path = Path(self.path)
        tally = _TALLY[path]
        sb = self._sandbox()
        result = run_check(sb, self.check, sb.hidden_seed)
        if result.passed:
            tally.passed += result.points
            return
        if result.message.startswith("not implemented yet"):
            if tally.syntax and "(NameError)" in result.message:
                tally.unparsed += 1  # the code is there but does not parse: not a stub
                raise SelfCheckFailure(f"{tally.syntax[0]} ({self.check.exercise}: the cell did not run, so its "
                                       "functions are not defined; fix the syntax and run the cell)")
            tally.todo += 1
            raise SelfCheckFailure(f"NOT IMPLEMENTED YET: {self.check.exercise} -- {result.message}")
        tally.wrong += 1
        raise SelfCheckFailure(f"WRONG: {result.message}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, SelfCheckFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.check.exercise}: {self.check.what}"


def pytest_collect_file(parent, file_path):
    p = Path(file_path)
    if p.suffix == ".ipynb" and ".ipynb_checkpoints" not in p.parts and not p.resolve().is_relative_to(REPO_TESTS):
        _warm_sandbox()
    if not wanted(p, parent.config):
        return None
    return NotebookFile.from_parent(parent, path=file_path)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    here = Path(config.invocation_params.dir)
    for path, t in _TALLY.items():
        if not t.public:
            continue
        try:
            where = path.resolve().relative_to(here.resolve())
        except ValueError:
            where = path
        tr.section(f"self-check: {path.name}" + (f" ({where})" if str(where) != path.name else ""))
        for line in t.syntax:
            tr.write_line(line)
        tr.write_line(f"public checks: {t.passed:g} of {t.public:g} points passed"
                      f" ({t.todo} not implemented yet, {t.wrong} wrong"
                      + (f", {t.unparsed} in cells with a syntax error" if t.unparsed else "") + ").")
        tr.write_line(f"Hidden checks worth {t.hidden:g} more points were NOT run: the grader tests other "
                      "inputs and edge cases, so your grade can be lower than this.")
