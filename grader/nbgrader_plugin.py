"""nbgrader integration: ``TrustedGrade`` replaces nbgrader's Execute preprocessor.

nbgrader's own path runs the tests inside the student's kernel, where student code can
rewrite them. Here the submission runs in the sandbox (grader.sandbox), the checks run in
nbgrader's own process, and each grade cell's outputs are replaced by the trusted feedback
and the score, which nbgrader's SaveAutoGrades then records (a number as the last output
is partial credit; see nbgrader.utils.determine_grade).
"""

from __future__ import annotations

from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor
from nbformat.v4 import new_output

from . import config
from .grade import IsolationError, grade_cells, report_lines_for_exercise


class TrustedGrade(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        settings = config.load(Path.cwd())
        cells = [c.source for c in nb.cells if c.cell_type == "code"]
        label = resources.get("nbgrader", {}).get("student", "submission")
        report = grade_cells(cells, label=label, settings=settings)
        self.log.info("trusted grading of %s: %g / %g points (isolation %s)", label, report.total,
                      report.max_total, report.isolation)
        code_i = 0
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            ran = report.cells[code_i] if code_i < len(report.cells) else None
            code_i += 1
            meta = cell.metadata.get("nbgrader", {})
            gid = meta.get("grade_id")
            if meta.get("grade") and gid in report.exercises:
                ex = report.exercises[gid]
                text = "\n".join(report_lines_for_exercise(ex, report)) + "\n"
                cell.outputs = [new_output("stream", name="stdout", text=text),
                                new_output("execute_result", data={"text/plain": repr(float(ex.score))},
                                           execution_count=None)]
            else:
                outs = []
                if ran is not None and ran.stdout:
                    outs.append(new_output("stream", name="stdout", text=ran.stdout))
                if ran is not None and ran.error and ran.error != "not run":
                    name, _, value = ran.error.partition(": ")
                    outs.append(new_output("error", ename=name, evalue=value[:500], traceback=[]))
                cell.outputs = outs
        resources.setdefault("lab_grader", {})["report"] = report.to_json()
        return nb, resources


__all__ = ["TrustedGrade", "IsolationError"]
