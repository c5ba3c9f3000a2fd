"""Lab 3.2.1: Data Type Exploration (FP32 ... NVFP4), the course's first lab plug-in.

``LAB`` is what the framework finds (entry point ``lab_grader.labs: lab321 = "labs.lab321:LAB"``,
or this folder in a course's ``labs/``): its checks (``checks/``), its trusted answers
(``answers.py``), its instructor notebook ``source/lab321/lab321.ipynb``, its demo mistakes and its device-check
lane check (``lanes.py``).
"""

from grader.grading.labs import Lab

from .checks import LAB_CHECKS
from .lanes import LANES
from .mistakes import MISTAKES

LAB = Lab(
    id="lab321",
    title="Lab 3.2.1: Data Type Exploration",
    exercises=LAB_CHECKS,
    trusted=("labs.lab321", "reference"),
    mistakes=MISTAKES,
    lanes=LANES,
)
