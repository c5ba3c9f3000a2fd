"""Late work: the penalty rule, the one final score every view shows, and the note the TA and student see.

    c.AssignLatePenalties.plugin_class = "grader.course.late.LabLatePenalty"
    c.LabLatePenalty.percent_per_day = 10    # 1 s to 24 h late: -10 %, 24 h to 48 h: -20 %, ...
    c.LabLatePenalty.grace_minutes = 0       # lateness forgiven (clock skew, an upload that took a while)
    c.LabLatePenalty.max_percent = 100

Lateness is nbgrader's: the submission's timestamp.txt against the assignment's due date
(``nbgrader db assignment add lab321 --duedate="2026-10-01 23:59 Europe/Berlin"``). nbgrader keeps
the checks' score and the penalty apart in the gradebook; ``final_score`` is the one rule that
combines them, and the Canvas export, the per-check CSVs, ``class.csv`` and the class report all
use it. The formgrader shows only the checks' score, so ``LabAssignLatePenalties`` (in place of
nbgrader's ``AssignLatePenalties``) puts a note at the top of a late student's autograded notebook
(seen in the formgrader and in the feedback) that says the penalty and the final score.
"""

from __future__ import annotations

import math
from typing import Optional

from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.preprocessors import AssignLatePenalties
from traitlets import Float

NOTE_KEY = "lab_grader_late_note"  # metadata flag of the note cell (replaced on regrade)


def final_score(score: Optional[float], penalty: Optional[float]) -> Optional[float]:
    """The score a student gets: the checks' score less the late penalty, never below 0 (None: not graded)."""
    if score is None:
        return None
    return round(max(0.0, float(score) - float(penalty or 0.0)), 6)


def lateness_of(submission) -> Optional[dict]:
    """``{"seconds_late", "penalty"}`` of an nbgrader SubmittedAssignment, or None when it is on time."""
    seconds = float(submission.total_seconds_late or 0.0)
    penalty = float(submission.late_submission_penalty or 0.0)
    if seconds <= 0 and penalty == 0:
        return None
    return {"seconds_late": round(seconds, 3), "penalty": round(penalty, 6)}


def record_final(record: dict) -> Optional[float]:
    """The final score of a per-check record (grader/results.py), with the ``late`` entry it may carry."""
    return final_score(record.get("total"), (record.get("late") or {}).get("penalty"))


def duration(seconds: float) -> str:
    """'31.0 h', '12 min' or '1 s'."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def late_text(late: Optional[dict]) -> str:
    """'31.0 h late: -5.6 points' (empty when on time)."""
    if not late:
        return ""
    return f"{duration(late['seconds_late'])} late: -{late['penalty']:g} points"


class LabLatePenalty(LateSubmissionPlugin):
    """Deduct ``percent_per_day`` percent of the notebook's score for every started day late."""

    percent_per_day = Float(10.0, help="Percent of the score deducted per started day (24 h) late.").tag(config=True)
    grace_minutes = Float(0.0, help="Minutes after the due date that are not counted as late.").tag(config=True)
    max_percent = Float(100.0, help="The largest deduction, in percent of the score.").tag(config=True)

    def days_late(self, total_seconds_late: float) -> int:
        late = total_seconds_late - 60 * self.grace_minutes
        return max(0, math.ceil(late / 86400))

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float):
        days = self.days_late(total_seconds_late)
        if days == 0 or not score:
            return 0.0 if days == 0 else None
        percent = min(self.max_percent, self.percent_per_day * days)
        penalty = round(score * percent / 100.0, 6)
        self.log.warning("late penalty for %s: %d day(s) late, -%g %% of %g = -%g points", student_id, days,
                         percent, score, penalty)
        return penalty


class LabAssignLatePenalties(AssignLatePenalties):
    """nbgrader's AssignLatePenalties, plus a note on top of a late notebook: lateness, penalty, final score."""

    def preprocess(self, nb, resources):
        from nbformat.v4 import new_markdown_cell

        nb, resources = super().preprocess(nb, resources)
        nb.cells = [c for c in nb.cells if not c.get("metadata", {}).get(NOTE_KEY)]
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url) as gb:
            sub = gb.find_submission(self.assignment_id, self.student_id)
            nbk = gb.find_submission_notebook(self.notebook_id, self.assignment_id, self.student_id)
            seconds = float(sub.total_seconds_late or 0.0)
            penalty = float(nbk.late_submission_penalty or 0.0)
            score, max_score = float(nbk.score or 0.0), float(nbk.max_score or 0.0)
            due = sub.duedate
        if seconds <= 0:
            return nb, resources
        text = (f"**Late submission.** Handed in {duration(seconds)} after the due date "
                f"({due:%Y-%m-%d %H:%M} UTC). Late penalty: **-{penalty:g}** points, so the score of "
                f"{score:g} / {max_score:g} from the checks below counts as "
                f"**{final_score(score, penalty):g} / {max_score:g}**.")
        cell = new_markdown_cell(text)
        cell.metadata[NOTE_KEY] = True
        nb.cells.insert(0, cell)
        return nb, resources
