#!/usr/bin/env bash
# CI step: install and start the single-node SLURM cluster used by tests/slurm.
# Never fails the build: when SLURM cannot be installed or started it says why, loudly, and exits 0
# so the other tests still run; tests/slurm then skips with the reason.
#   .ci/slurm.sh            # from the repository root, as root or with passwordless sudo
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster="$here/slurm/local_cluster.sh"
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    # shellcheck disable=SC2054  # the commas belong to --preserve-env
    if sudo -n true 2>/dev/null; then SUDO=(sudo -n --preserve-env=SLURM_LOCAL_DIR,SLURM_LOCAL_ACCOUNTING,SLURM_LOCAL_WAIT_S)
    else SUDO=(false); fi
fi

loud() {
    echo "################################################################################" >&2
    echo "## SLURM NOT AVAILABLE: $*" >&2
    echo "## tests/slurm will be SKIPPED. The rest of the test suite still runs." >&2
    echo "################################################################################" >&2
}

if [[ ${SUDO[0]:-} == false ]]; then
    loud "not root and no passwordless sudo: cannot install packages or start daemons"
    exit 0
fi

t0=$SECONDS
if ! "${SUDO[@]}" "$cluster" install; then
    loud "'slurm/local_cluster.sh install' failed (output above)"
    exit 0
fi
t1=$SECONDS
if ! "${SUDO[@]}" "$cluster" start; then
    loud "'slurm/local_cluster.sh start' failed (output above); logs in ${SLURM_LOCAL_DIR:-/var/lib/tokbench-slurm}/log"
    for f in "${SLURM_LOCAL_DIR:-/var/lib/tokbench-slurm}"/log/*.log; do
        [[ -f $f ]] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 0
fi
echo "[ci/slurm] SLURM ready: install $((t1 - t0)) s, start $((SECONDS - t1)) s"
sinfo || true
