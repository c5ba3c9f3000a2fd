"""Course tooling: nbgrader's plugin and grading-ahead, LMS exports, late penalty, reports, the class
command, the students' self-check, the demo and the device check. Uses grading."""
