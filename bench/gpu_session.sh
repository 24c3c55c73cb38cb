#!/usr/bin/env bash
# The GPU checks of issue 7 as ONE prepared job (15 minutes of device time in all,
# ~1-2 of them machine start-up): bench/loss.py, bench/train.py (FMNIST and ISIC shapes)
# and bench/grid.py on the paper's full grid (504 runs, pretrained none) under a hard
# time limit. Everything lands in $OUT (JSON + logs; at most 8 files come back).
#
# 1. Here, on the CPU machine, from the repository root (needs PyPI and ../shared/data):
#
#      bash bench/gpu_session.sh prepare
#
#    copies ../shared/data to .gpu-data/ (37 MB; listed in .git/info/exclude, never
#    committed) and downloads to .whl/ (ignored) the ~10 MB of wheels Snakemake needs there
#    beyond the device image's packages (python 3.12; pulp is left out: --scheduler greedy).
#    The device runs a copy of the working tree; ../shared does not travel, so data and
#    wheels go as carried paths (64 MiB in all with the tree: ~50 MB).
#
# 2. The device call (one call; timeout leaves ~2 minutes of slack for a rerun decision):
#
#      run(command="bash bench/gpu_session.sh", carry=[".gpu-data", ".whl"], timeout_s=540)
#
#    then copy the returned files: $OUT/grid_cuda.json -> bench/results/, etc.
#
# 3. Afterwards: rm -rf .gpu-data (the workflow tests copy the working tree).
#
# CPU=1 bash bench/gpu_session.sh   checks this script end to end on CPU (tiny settings,
# local snakemake, no wheels), writing to $OUT or /tmp/gpu-session-out.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "prepare" ]]; then
    data=${DATA:-../shared/data}
    rm -rf .gpu-data && cp -r "$data" .gpu-data && chmod -R u+w .gpu-data
    mkdir -p "$(dirname "$(git rev-parse --git-path info/exclude)")"
    grep -qx '/.gpu-data/' "$(git rev-parse --git-path info/exclude)" 2>/dev/null ||
        echo '/.gpu-data/' >>"$(git rev-parse --git-path info/exclude)"
    rm -rf .whl && mkdir -p .whl
    # Snakemake 9.27.1's requirements missing from the device image (KINDS.md list), pinned.
    pkgs="annotated-types==0.7.0 argparse-dataclass==2.0.0 conda-inject==1.3.2 configargparse==1.9.0
      docutils==0.22.4 dpath==2.2.0 fastjsonschema==2.22.3 gitdb==4.0.12 gitpython==3.2.1
      greenlet==3.5.6 humanfriendly==10.0 immutables==0.21 jsonschema==4.26.0
      jsonschema-specifications==2025.9.1 jupyter-core==5.9.1 nbformat==5.11.1 platformdirs==4.14.8
      pydantic==2.13.4 pydantic-core==2.46.4 referencing==0.37.0 rpds-py==0.30.0 smart-open==7.7.1
      smmap==5.0.3 snakemake==9.27.1 snakemake-interface-common==1.23.0
      snakemake-interface-executor-plugins==9.4.0 snakemake-interface-logger-plugins==2.1.0
      snakemake-interface-report-plugins==1.3.0 snakemake-interface-scheduler-plugins==2.0.2
      snakemake-interface-storage-plugins==4.4.1 sqlalchemy==2.0.58 sqlmodel==0.0.37 tenacity==9.2.1
      throttler==1.2.3 traitlets==5.15.0 typing-inspection==0.4.2 yte==1.9.4"
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .whl $pkgs
    python3 -m pip wheel -q --no-deps -w .whl connection-pool==0.0.3  # an sdist on PyPI: build it here
    du -sh .gpu-data .whl
    exit 0
fi

OUT=${OUT:-/tmp/gpu-session-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
t_start=$(date +%s)
log() { echo "[$(($(date +%s) - t_start)) s] $*" | tee -a "$OUT/session.log"; }

if [[ "${CPU:-0}" == "1" ]]; then
    # Shell check on CPU: the same steps, tiny settings, the local installation.
    DEV=cpu
    DATA=${DATA:-../shared/data}
    LOSS_ARGS=(--device cpu --sizes 128 --min-time 0.1 --repeats 1)
    TRAIN_STEPS=2
    GRID_ARGS=(--device cpu --workers 2 --cores 2 --fraction 0.02 --datasets fmnist --fmnist-total 100
        --epochs1 1 --epochs2 1 --time-limit 240)
    LIMIT=400
else
    DEV=cuda
    DATA=.gpu-data
    LOSS_ARGS=(--device cuda --min-time 0.3 --repeats 3)
    TRAIN_STEPS=50
    # 8 warm workers share the GPU; 16 cores for Snakemake, the clients and data preparation.
    GRID_ARGS=(--device cuda --workers "${K:-8}" --cores 16 --time-limit "${GRID_LIMIT:-330}")
    LIMIT=500
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site .whl/*.whl >"$OUT/pip.log" 2>&1 || { tail -20 "$OUT/pip.log"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
    mkdir -p /tmp/bin
    printf '#!/bin/sh\nexec python3 -m asymcl "$@"\n' >/tmp/bin/asymcl && chmod +x /tmp/bin/asymcl
    export PATH=/tmp/bin:$PATH
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1 || true
fi
[[ -d "$DATA/fmnist" ]] || { echo "no $DATA/fmnist: run 'bash bench/gpu_session.sh prepare' and carry .gpu-data" >&2; exit 2; }
log "python $(python3 -c 'import sys, torch, snakemake; print(sys.version.split()[0], "torch", torch.__version__, "snakemake", snakemake.__version__)')"
log "asymcl on PATH: $(command -v asymcl)"

# Each step has its own time limit so one slow step cannot eat the others' budget; a
# failed step is logged and the session goes on (what did finish still comes back).
step() {
    local name=$1 limit=$2
    shift 2
    log "start $name (limit ${limit}s): $*"
    if timeout --signal=INT --kill-after=30 "$limit" "$@" >"$OUT/$name.log" 2>&1; then
        log "done $name"
    else
        log "FAILED $name (status $?); tail:"
        tail -5 "$OUT/$name.log" | tee -a "$OUT/session.log"
    fi
}

step loss 60 python3 bench/loss.py "${LOSS_ARGS[@]}" --out "$OUT/loss_$DEV.json"
step train 90 bash -c "python3 bench/train.py --device $DEV --steps $TRAIN_STEPS --out $OUT/train_$DEV.json &&
    python3 bench/train.py --device $DEV --arch resnet50 --size 128 --steps $TRAIN_STEPS --out $OUT/train_${DEV}_isic.json"
step grid "$LIMIT" python3 bench/grid.py --data "$DATA" "${GRID_ARGS[@]}" --out "$OUT/grid_$DEV.json"
# grid.py copies Snakemake's logs next to its JSON; keep the returned file count <= 8.
rm -f "$OUT"/grid_"$DEV".prepare.log
log "session done"
ls -la "$OUT"
