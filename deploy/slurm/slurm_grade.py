"""Grade a class on a Slurm cluster: dask-jobqueue starts Dask workers as Slurm jobs, and the
existing `python -m grader class TARGET --scheduler ADDRESS` path sends them the notebooks.

Each job runs `lab-grader doctor` before its worker starts (a node below the course's
min_isolation never joins), and each worker process grades the model solution (the canary)
before its first notebook. The course folder and the submissions must be on a filesystem every
node sees at the same path (home or project space), and the grader's environment too.

    python deploy/slurm/slurm_grade.py submitted --jobs 8 --partition cpu --account course123
    python deploy/slurm/slurm_grade.py submitted --print-job-script     # what sbatch will get
    python deploy/slurm/slurm_grade.py submitted --jobs 8 --out graded   # --out etc. go to `grader class`

Run it from the course folder (where course_config.py is), with the environment's Python.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def make_cluster(a: argparse.Namespace):
    from dask_jobqueue import SLURMCluster

    python = sys.executable
    return SLURMCluster(
        queue=a.partition, account=a.account, cores=a.cores, processes=a.cores, memory=f"{a.memory_gb}GB",
        walltime=a.walltime, python=python, job_name="lab-grader",
        # the doctor first: exit 3 ends the job before its worker joins
        job_script_prologue=[f"cd {os.getcwd()}", f"{python} -m grader doctor || exit 3"],
        # one notebook per worker process at a time; the sandbox limits each notebook itself
        worker_extra_args=["--nthreads", "1", "--memory-limit", "0"],
        log_directory=a.logs, scheduler_options={"dashboard_address": ":8787"},
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", help="the folder (or glob, or assignment name) that `python -m grader class` takes")
    p.add_argument("--jobs", type=int, default=4, help="Slurm jobs (each runs --cores worker processes)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--memory-gb", type=int, default=12, help="per job: 4 GiB per notebook plus the workers")
    p.add_argument("--walltime", default="01:00:00")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--logs", default="slurm-logs")
    p.add_argument("--print-job-script", action="store_true", help="print the job script and stop")
    a, extra = p.parse_known_args(argv)  # the rest goes to `grader class` (e.g. --out DIR)
    cluster = make_cluster(a)
    try:
        if a.print_job_script:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=a.jobs)
        deadline = time.monotonic() + 1800
        from distributed import Client
        with Client(cluster) as client:  # wait for the first worker (queue time)
            while not client.scheduler_info().get("workers") and time.monotonic() < deadline:
                time.sleep(5)
        return subprocess.call([sys.executable, "-m", "grader", "class", a.target,
                                "--scheduler", cluster.scheduler_address, *extra])
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
