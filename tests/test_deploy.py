"""deploy/: what can be checked without a cluster. Kubernetes manifests against Kubernetes' own
schemas (strict: an unknown or misspelt field fails), the seccomp profile's shape and what it
allows, shell scripts with `bash -n`, the systemd unit's settings, the Slurm job script
dask-jobqueue generates.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
# hostUsers, procMount and appArmorProfile are all in the schema from 1.30 on; 1.33 enables user
# namespaces by default.
K8S_VERSIONS = ("1.33.0", "1.37.0")

yaml = pytest.importorskip("yaml", reason="pyyaml is needed to read the manifests (pip install pyyaml)")


def _kv():
    return pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate to check the manifests "
                               "against Kubernetes' schemas")


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ["grader-pod.yaml", "dask-cluster.yaml"])
def test_manifests_validate_against_kubernetes_schemas(name, version):
    kv = _kv()
    docs = _docs(name)
    assert docs
    for doc in docs:
        kv.validate(doc, version, strict=True)


def _pod_specs(name: str) -> list[dict]:
    out = []
    for d in _docs(name):
        spec = d["spec"] if d["kind"] == "Pod" else d["spec"].get("template", {}).get("spec")
        if spec and any("lab-grader:" in c["image"] and "scheduler" not in c["name"] for c in spec["containers"]):
            out.append(spec)
    return out


@pytest.mark.parametrize("name", ["grader-pod.yaml", "dask-cluster.yaml"])
def test_grading_pods_allow_the_namespaces_level(name):
    """The settings the doctor's fixes name: a user-namespaced, non-root pod whose seccomp profile
    lets unshare and mount through, AppArmor unconfined, /proc unmasked."""
    specs = _pod_specs(name)
    assert specs
    for spec in specs:
        assert spec["hostUsers"] is False
        sc = spec["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
        assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/lab-grader.json"}
        assert sc["appArmorProfile"]["type"] == "Unconfined"
        for c in spec["containers"]:
            assert c["securityContext"]["procMount"] == "Unmasked"
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["limits"]["memory"]


def test_dask_workers_run_the_doctor_before_joining():
    worker = next(d for d in _docs("dask-cluster.yaml") if d["metadata"]["name"].endswith("worker"))
    script = " ".join(worker["spec"]["template"]["spec"]["containers"][0]["args"])
    assert script.index("lab-grader doctor &&") < script.index("dask worker")


def test_seccomp_profile_allows_the_sandbox_and_refuses_the_dangerous():
    prof = json.loads((K8S / "seccomp-lab-grader.json").read_text())
    assert prof["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {n for rule in prof["syscalls"] if rule["action"] == "SCMP_ACT_ERRNO" for n in rule["names"]}
    assert not {"unshare", "mount", "umount2", "pivot_root", "clone", "clone3", "setns"} & denied
    assert {"kexec_load", "init_module", "finit_module", "bpf", "keyctl", "userfaultfd", "perf_event_open",
            "io_uring_setup", "open_by_handle_at", "ptrace"} <= denied


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_z2jh_grader_profile_builds_a_valid_pod(version):
    kv = _kv()
    values = yaml.safe_load((K8S / "z2jh-values.yaml").read_text())
    grader = next(p for p in values["singleuser"]["profileList"] if "Grader" in p["display_name"])
    o = grader["kubespawner_override"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-ta"},
           "spec": {**o["extra_pod_config"], "securityContext": o["pod_security_context"],
                    "containers": [{"name": "notebook", "image": "x", "securityContext": o["container_security_context"]}]}}
    kv.validate(pod, version, strict=True)
    assert pod["spec"]["hostUsers"] is False


@pytest.mark.parametrize("script", ["systemd/run-server.sh", "slurm/grade-class.sbatch"])
def test_scripts_parse(script):
    cp = subprocess.run(["bash", "-n", str(DEPLOY / script)], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr


def test_systemd_unit_delegates_cgroups_and_checks_first():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((DEPLOY / "systemd" / "lab-grader.service").read_text())
    svc = unit["Service"]
    assert svc["Delegate"] == "yes"
    assert svc["ExecStartPre"].endswith("lab doctor")
    assert " jupyter " in svc["ExecStart"] and "--ip=127.0.0.1" in svc["ExecStart"]
    for key in ("RestrictNamespaces", "PrivateUsers", "ProtectControlGroups", "SystemCallFilter"):
        assert key not in svc  # each would take from the sandbox what it needs
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_slurm_job_script_runs_the_doctor_before_the_worker(tmp_path):
    pytest.importorskip("dask_jobqueue", reason="pip install dask-jobqueue to generate the Slurm job script")
    cp = subprocess.run([sys.executable, str(DEPLOY / "slurm" / "slurm_grade.py"), "submitted", "--print-job-script",
                         "--partition", "cpu", "--logs", str(tmp_path)], cwd=str(ROOT), capture_output=True,
                        text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr[-2000:]
    script = cp.stdout
    assert "#SBATCH -p cpu" in script
    doctor = script.index("-m grader doctor || exit 3")
    assert doctor < script.index("dask_worker")
    job = tmp_path / "job.sh"
    job.write_text(script)
    assert subprocess.run(["bash", "-n", str(job)]).returncode == 0
