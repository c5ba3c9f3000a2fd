"""Lab 3.2.1's own device-check lane checks (``python -m grader device-check``)."""

from __future__ import annotations

import reference as R


def notebook_environment_table() -> list[str]:
    """The notebook's own native_formats table must equal reference.native_formats."""
    from grader.config import find_course_root
    from grader.grading.labs import get_lab
    from grader.grading.nbfile import read_cells

    root = find_course_root()
    cells = read_cells(get_lab("lab321", root).model_solution(root))
    src = next(c for c in cells if "def native_formats" in c)
    ns: dict = {}
    exec(compile(src.split("if torch.cuda.is_available()")[0], "<notebook environment cell>", "exec"), ns)
    fails = []
    for cc in [(7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (10, 3), (12, 0), (12, 1)]:
        # the notebook may use the lab's short names (fp8_e4m3): aliases of reference's names
        if tuple(R.canonical_name(n) for n in ns["native_formats"](cc)) != R.native_formats(cc):
            fails.append(f"the notebook's native_formats{cc} differs from reference.native_formats")
    return fails


LANES = (("cpu", "notebook environment table", notebook_environment_table),)
