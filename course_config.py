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
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "build_lab.py"]

# Students get stubs; solutions never leave source/.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Trusted grading (grader/nbgrader_plugin.py): the submission runs in the sandbox, its
# functions are called with hidden inputs, and the scores come from this process.
# Before the first submission: the model solution must get full marks in this environment.
from grader.canary import nbgrader_pre_convert_hook  # noqa: E402

c.Autograde.pre_convert_hook = nbgrader_pre_convert_hook
c.Autograde.autograde_preprocessors = [
    "grader.nbgrader_plugin.TrustedGrade",
    "grader.nbgrader_plugin.SanitizeStudentContent",  # no script or handler from a student reaches the TA
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors.insert(0, "grader.contract.CheckGradebookContract")  # grade cells == checks
c.GenerateAssignment.preprocessors.insert(0, "grader.contract.CheckContract")  # (grader/contract.py)
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "grader.nbgrader_plugin.RobustOverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.OverwriteCells.add_missing_cells = True  # a deleted grade cell is restored, not scored 0 forever
c.LimitOutput.max_lines = 200
c.Execute.timeout = 60
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]

# The hidden inputs derive from this seed: change it each term.
c.LabGrader.hidden_seed = "lab321-2026-autumn-6c1f9e"
c.LabGrader.assignment = "lab321"
c.LabGrader.isolation = "namespaces"     # tried first
c.LabGrader.min_isolation = "namespaces" # refuse weaker runs; a TA laptop without namespaces may lower it to
                                         # "process" (README: what each level guarantees)
c.LabGrader.call_timeout = 10            # seconds per call of a student's function
c.LabGrader.cell_timeout = 60            # seconds per notebook cell
c.LabGrader.notebook_budget = 90         # seconds per notebook for everything (cells, re-runs, calls); an
                                         # honest notebook needs 1-3 s
c.LabGrader.memory_mb = 4096
