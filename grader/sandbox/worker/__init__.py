"""The sandbox's worker: the processes that run a notebook, one module per mechanism.

Run as a file, ``python -I grader/sandbox/worker/main.py CONFIG`` (``main.py``: the zygote), this
folder is loaded as the package ``sandbox_worker`` and nothing else of the grader is importable.
The grader imports two of its modules as ``grader.sandbox.worker``: ``codec`` (framing, frame
limits, plain data) and ``spec`` (the spawn spec); every module here imports only the standard
library and its siblings (numpy, torch and IPython where a value or a cell needs them).

Process tree (one zygote per grading run; ``grader/sandbox/client.py`` drives it)::

    grader (trusted) --socket--> zygote  main.py: torch, numpy, IPython imported once
                                   '-- fork: keeper  keeper.py: uids, cgroup, namespaces; never runs student code
                                          '-- fork: notebook process  keeper.isolate (mounts, caps, seccomp,
                                                rlimits), then notebook.py: runs the cells, answers calls

Modules: ``codec`` framing and plain data; ``spec`` the spawn spec; ``linux`` libc and flags;
``procs`` finding and killing processes; ``uids`` private uid slots; ``cgroup`` v2/v1 limits for the
tree; ``rlimits`` per-process limits; ``mounts`` the new root and masks; ``caps`` capabilities;
``syscalls`` system call numbers per architecture; ``seccomp`` the filter, by name; ``keeper``;
``notebook``; ``main``. The protocols are in ``main.py``, ``keeper.py`` and ``notebook.py``.
"""
