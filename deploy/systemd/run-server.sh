#!/usr/bin/env bash
# The grading server without systemd's system manager: the doctor first, then JupyterLab with
# the formgrader for the course in COURSE (default: the current folder). Where a user systemd
# runs, the server is started in a scope with a delegated cgroup, so each notebook gets its own
# memory and process limit.
#   deploy/systemd/run-server.sh [COURSE] [jupyter options...]
set -euo pipefail
LAB="$(cd "$(dirname "$0")/../.." && pwd)/lab"
COURSE="${1:-$PWD}"
[ "$#" -gt 0 ] && shift
cd "$COURSE"
"$LAB" doctor || { echo "run-server: the doctor found this machine below the course's min_isolation;" \
  "apply the fixes above (docs/operator/doctor.md) or lower c.LabGrader.min_isolation" >&2; exit 3; }
if command -v systemd-run >/dev/null && systemctl --user show-environment >/dev/null 2>&1; then
  exec systemd-run --user --scope --quiet -p Delegate=yes "$LAB" jupyter --no-browser --ip=127.0.0.1 "$@"
fi
exec "$LAB" jupyter --no-browser --ip=127.0.0.1 "$@"
