"""Lab 3.2.2: Quantizing a real model (all-MiniLM-L6-v2 measured by its task), the course's second lab plug-in.

``LAB`` is what the framework finds (entry point ``lab_grader.labs: lab322 = "labs.lab322:LAB"``, or this
folder in a course's ``labs/``): its checks (``checks/``: sensitivity, plan, activations), its trusted
answers (``answers.py``, built on ``reference.minilm``), its sentence sets, its instructor notebook
``source/lab322/lab322.ipynb`` and its demo mistakes (``mistakes.py``).
"""

from grader.grading.labs import Lab

from .checks import LAB_CHECKS, warm_public
from .mistakes import MISTAKES

LAB = Lab(
    id="lab322",
    title="Lab 3.2.2: Quantizing a real model",
    exercises=LAB_CHECKS,
    trusted=("labs.lab322", "reference"),
    mistakes=MISTAKES,
    worker_imports=("safetensors", "tokenizers"),  # the notebook reads the model with both
    warm=warm_public,  # the self-check computes the public checks' reference values while the notebook runs
)
