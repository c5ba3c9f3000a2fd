# nbgrader looks for nbgrader_config.py; the course's settings live in course_config.py.
load_subconfig("course_config.py")  # noqa: F821 - provided by traitlets
