"""Late penalty: a percentage of the score per started day late (nbgrader LateSubmissionPlugin).

    c.AssignLatePenalties.plugin_class = "grader.course.late.LabLatePenalty"
    c.LabLatePenalty.percent_per_day = 10    # 1 s to 24 h late: -10 %, 24 h to 48 h: -20 %, ...
    c.LabLatePenalty.grace_minutes = 0       # lateness forgiven (clock skew, an upload that took a while)
    c.LabLatePenalty.max_percent = 100

Lateness is nbgrader's: the submission's timestamp.txt against the assignment's due date
(``nbgrader db assignment add lab321 --duedate="2026-10-01 23:59 Europe/Berlin"``).
"""

from __future__ import annotations

import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float


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
