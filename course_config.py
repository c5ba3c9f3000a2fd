# The course's configuration: nbgrader's settings and the trusted grader's (c.LabGrader).
# nbgrader reads it through nbgrader_config.py; `python -m grader` reads it directly.
c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "lab321"
c.CourseDirectory.root = __import__("os").path.dirname(__import__("os").path.abspath(__file__))
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "assignments"  # generate_assignment writes assignments/<lab>/<lab>.ipynb
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# A lab's source folder holds its notebook's jupytext source WITH the solutions (source/<lab>/<lab>.py):
# no .py file of source/ is ever copied into a release (a lab ships no module to students).
# A submission is data: no Python or pytest/Python config a student sends (conftest.py, pytest.ini,
# sitecustomize.py, *.pth, ...) is copied by collect or autograde (grader/studentfiles.py).
from grader.studentfiles import NOT_COPIED as _NOT_COPIED  # noqa: E402

c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",  # nbgrader's defaults
                            "*.py", "jupytext.toml", *_NOT_COPIED]
# nbgrader runs `alembic` by name: the formgrader started as `.venv/bin/jupyter lab` (no activation) finds
# it; and nbgrader's warnings no TA can act on are filtered (grader/course/env.py).
__import__("grader.course.env").course.env.prepare_process()

# Students get stubs; solutions never leave source/.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Trusted grading (grader/course/nbgrader_plugin.py): the submission runs in the sandbox, its
# functions are called with hidden inputs, and the scores come from this process.
# Before the first submission: the model solution must get full marks in this environment (the canary,
# grader.grading.canary.nbgrader_pre_convert_hook); then each submission is checked for a renamed notebook.
c.Autograde.pre_convert_hook = "grader.course.nbgrader_plugin.pre_convert_hook"
# Before nbgrader touches a folder: a submission without a gradable notebook (renamed, unreadable) is a
# warning for that student and is left out of the run (nbgrader would fail the whole run on it), and
# generate_assignment checks the exercise contract before it removes the previous release.
c.Autograde.exporter_class = "grader.course.nbgrader_plugin.AutogradeExporter"
c.GenerateAssignment.exporter_class = "grader.grading.contract.ContractFirstExporter"
c.Autograde.autograde_preprocessors = [
    "grader.course.nbgrader_plugin.TrustedGrade",
    "grader.course.nbgrader_plugin.SanitizeStudentContent",  # no script or handler from a student reaches the TA
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "grader.course.late.LabAssignLatePenalties",  # nbgrader's, plus a note saying the penalty (grader/course/late.py)
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors.insert(0, "grader.grading.contract.CheckGradebookContract")  # grade cells == checks
c.GenerateAssignment.preprocessors.insert(0, "grader.grading.contract.CheckContract")  # (grader/grading/contract.py)
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "grader.course.nbgrader_plugin.RobustOverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.OverwriteCells.add_missing_cells = True  # a deleted grade cell is restored, not scored 0 forever
c.LimitOutput.max_lines = 200
c.Execute.timeout = 60
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "grader.course.nbgrader_plugin.FeedbackClearHiddenTests",  # ClearHiddenTests, quiet under the HTML exporter
]

# The hidden inputs derive from this seed: change it each term.
c.LabGrader.hidden_seed = "lab321-2026-autumn-6c1f9e"
c.LabGrader.isolation = "namespaces"     # tried first
c.LabGrader.min_isolation = "namespaces" # refuse weaker runs; a TA laptop without namespaces may lower it to
                                         # "process" (README: what each level guarantees)
c.LabGrader.call_timeout = 10            # seconds per call of a student's function
c.LabGrader.cell_timeout = 60            # seconds per notebook cell
c.LabGrader.notebook_budget = 90         # seconds per notebook for everything (cells, re-runs, calls); an
                                         # honest notebook needs 1-3 s
c.LabGrader.memory_mb = 4096
c.LabGrader.jobs = 0                     # notebooks graded side by side; 0: LAB_GRADER_JOBS or min(4, cores)

# ---- A term out of the box (README: "A TA's term") ----------------------------------------
import os as _os  # noqa: E402

_root = c.CourseDirectory.root
# The exchange folder belongs to the course (release_assignment / fetch / submit / collect); created on use.
c.Exchange.root = _os.path.join(_root, "exchange")
_EXCHANGE_COMMANDS = {"release_assignment", "fetch_assignment", "submit", "collect", "list", "release_feedback",
                      "fetch_feedback", "lab", "notebook", "server"}  # the last three: the formgrader's buttons
_argv = __import__("sys").argv
_server = any(k in _os.path.normpath(_argv[0]).split(_os.sep)[-2:] or _os.path.basename(_argv[0]).startswith(k)
              for k in ("jupyterlab", "jupyter-lab", "jupyter_server", "jupyter-server", "notebook", "jupyter-notebook"))
if (_server or _EXCHANGE_COMMANDS & set(_argv[1:3])) and not _os.path.isdir(c.Exchange.root):
    try:
        _os.makedirs(c.Exchange.root, exist_ok=True)
        _os.chmod(c.Exchange.root, 0o1777)  # like /srv/nbgrader/exchange: everyone writes, only owners delete
    except OSError:
        pass
c.Exchange.path_includes_course = True

# Canvas's and Moodle's "download submissions" zips: nbgrader zip_collect lab321
# (put the zip in downloaded/lab321/archive/; see grader/course/lms.py for the names understood).
c.ZipCollectApp.collector_plugin = "grader.course.lms.LmsFileNameCollector"
c.ZipCollectApp.archive_directory = "archive"
c.ZipCollectApp.extracted_directory = "extracted"

# Late work: the due date is set in the gradebook (nbgrader db assignment add lab321 --duedate=...),
# lateness is the submission's timestamp.txt against it; the penalty is a percentage per started day.
c.AssignLatePenalties.plugin_class = "grader.course.late.LabLatePenalty"
c.LabLatePenalty.percent_per_day = 10
c.LabLatePenalty.grace_minutes = 0
# Exports: nbgrader export --exporter=grader.course.lms.CanvasExport --to canvas.csv
#          nbgrader export --exporter=grader.course.lms.ChecksExport --to checks.csv
