#!/usr/bin/env bash
# The paper-size GPU checks, recorded in one go on a machine with an NVIDIA GPU. From the repository root:
#
#     bash scripts/gpu_bench.sh [--out DIR] [--official DIR] [--steps 1,2,3,4,5,6,7] [--compile] ["note"]
#
#   --out DIR       where the results go (default bench/recordings): DIR/<gpu>-<date>-*.json for the bench stage,
#                   DIR/checks/<gpu>-<date>-*.json for the other checks, and this script's log in
#                   DIR/checks/<gpu>-<date>-gpu_bench.log
#   --official DIR  a checkout of github.com/Zehong-Ma/DeCo, for step 2 (default: env DECO_OFFICIAL); without one,
#                   step 2 is skipped and the log says why
#   --steps LIST    run only these steps (comma-separated numbers; default 1-7)
#   --compile       kept for old command lines: steps 6 and 7 are now in the default list (env COMPILE=1 too)
#   "note"          free text stored in each bench-stage recording
#
# Steps, most important first; each has its own time limit, and a failed step does not stop the next:
#   1. bench stage at paper size, 256 px: DeCo-XL vs Baseline-XL bf16 train step at the official per-GPU batch 32,
#      sampling 100x2 (CFG 3.2 on (0.1, 1]) and 50 steps without CFG, timed over 10 Euler steps and extrapolated
#      (the JSON says so); peak memory, NVML telemetry and energy, MFU against the documented dense bf16 peak
#      (989 TFLOPS for H100/H200 SXM, source in the JSON)               -> DIR/<gpu>-<date>-256.json
#   2. ours vs the official implementation at paper size on the GPU (DeCo-XL and Baseline-XL built from the
#      checkout's configs_c2i, same weights): forward parity in float32 and under bf16 autocast, train-step and
#      sampler time ratios; needs the official checkout          -> DIR/checks/<gpu>-<date>-vs-official-xl.json
#   3. the same bench at 512 px (train batch 16, the official 256 over 8 GPUs with grad_accum 2)
#                                                                        -> DIR/<gpu>-<date>-512.json
#   4. the real pipeline stages (prepare, train, sample) on the `smoke` profile with run.device cuda: the training
#      loop's bf16 autocast, EMA, checkpointing and the sampler on CUDA -> DIR/checks/<gpu>-<date>-smoke-cuda.json
#   5. where the XL train step's time goes: kernel categories (torch.profiler) against wall time, and the step
#      with each block compiled (deco_bench/tools/breakdown.py)                    -> DIR/checks/<gpu>-<date>-breakdown.json
#   6. train.compile modes side by side (training/compile.py): eager, `blocks` and `full`, DeCo-XL vs Baseline-XL at
#      256 px: train step at batch 32 with compile time and peak memory per mode, sampling 100x2 and 50 steps at
#      batch 1 and 64 with each step replayed from a CUDA graph (diffusion/graphs.py); MFU against the peak of the
#      board present (name and NVML max power limit: an H200 NVL is not an H200 SXM)
#                                                                        -> DIR/<gpu>-<date>-256-compile.json
#   7. the same modes' train step at batch 64 (256 px) and 16 (512 px), no sampling
#                                                    -> DIR/<gpu>-<date>-256-b64-compile.json, ...-512-compile.json
# Time on one H200: about 8 minutes for steps 1-5 (their limits add up to 13.5); steps 6 and 7 compile XL several
# times (limits 9 + 9 minutes more). A step that needs more GPU memory than is free stops at once with one line (the
# tools estimate it first). The gate compares a case with the case of the same name in another recording:
#     deco-bench gate DIR/<new>-256-compile.json bench/recordings/h200-2026-11-27-256.json   (the eager case)
# A copy of the repository whose .git is missing or stale names its revision for the fingerprints:
#     DECO_BENCH_GIT_REVISION=<sha> bash scripts/gpu_bench.sh ...
# Exit status: 0 when the script ran (each step's status is in the log), 1 without a CUDA device, 2 on bad usage.
set -uo pipefail

usage() { sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'; }
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }  # given paths are relative to where we start
OUT_DIR=bench/recordings  # relative to the repository root
OFFICIAL=${DECO_OFFICIAL:-}
OFFICIAL_FROM=DECO_OFFICIAL
STEPS=1,2,3,4,5,6,7
COMPILE=${COMPILE:-0}
NOTE="DeCo-XL vs Baseline-XL, paper sizes (scripts/gpu_bench.sh)"
while [ $# -gt 0 ]; do
    case $1 in
        --out) [ $# -ge 2 ] || { echo "gpu_bench.sh: --out needs a folder" >&2; exit 2; }
               OUT_DIR=$(abspath "$2"); shift 2 ;;
        --official) [ $# -ge 2 ] || { echo "gpu_bench.sh: --official needs a folder" >&2; exit 2; }
                    OFFICIAL=$(abspath "$2"); OFFICIAL_FROM=--official; shift 2 ;;
        --steps) [ $# -ge 2 ] || { echo "gpu_bench.sh: --steps needs a list, e.g. 1,3" >&2; exit 2; }
                 STEPS=$2; shift 2 ;;
        --compile) COMPILE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "gpu_bench.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
        *) NOTE=$1; shift ;;
    esac
done
for n in ${STEPS//,/ }; do
    case $n in
        [1-7]) ;;
        *) echo "gpu_bench.sh: --steps $STEPS: expected step numbers 1-7 separated by commas" >&2; exit 2 ;;
    esac
done
[ -n "${OFFICIAL}" ] && [ "$OFFICIAL_FROM" = DECO_OFFICIAL ] && OFFICIAL=$(abspath "$OFFICIAL")
want() { case ",$STEPS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
[ "$COMPILE" = 1 ] && ! want 6 && STEPS="$STEPS,6"

cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1
DATE=$(date -u +%Y-%m-%d)

"$PY" - <<'PYEOF' || exit 1
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_bench.sh: no CUDA device visible to torch " + torch.__version__ + "; nothing recorded")
PYEOF
mkdir -p "$OUT_DIR/checks" || { echo "gpu_bench.sh: cannot create $OUT_DIR/checks" >&2; exit 2; }
GPU=$("$PY" -c "import torch; n = torch.cuda.get_device_name(0); print(next((k.lower() for k in ('H200', 'H100', 'H800', 'A100', 'A800', 'L40S', 'B200') if k in n), n.split()[-1].lower()))")
BASE="$OUT_DIR/$GPU-$DATE"
CHK="$OUT_DIR/checks/$GPU-$DATE"  # not bench-stage results: kept out of the report's recordings table
LOG="$CHK-gpu_bench.log"
exec > >(tee -a "$LOG") 2>&1
echo "gpu_bench.sh: results in $OUT_DIR (log $LOG), steps $STEPS," \
     "official checkout: ${OFFICIAL:-none (--official DIR or DECO_OFFICIAL=DIR)}"

"$PY" - <<'PYEOF'
import torch
print("gpu_bench.sh:", torch.cuda.get_device_name(0), "torch", torch.__version__, "CUDA", torch.version.cuda)
try:
    import pynvml  # noqa: F401  (nvidia-ml-py: telemetry and energy; the benchmark degrades without it)
except ImportError:
    print("gpu_bench.sh: warning: nvidia-ml-py not installed; NVML fields will be null with the reason")
PYEOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,mig.mode.current,clocks.max.sm --format=csv || true

keep() {  # keep FILE: say whether the step wrote it
    if [ -f "$1" ]; then echo "gpu_bench.sh: wrote $1"; else echo "gpu_bench.sh: $1 was not written"; fi
}
step() {  # step NAME SECONDS CMD...: run with a time limit; report the failure and go on
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "gpu_bench.sh: == $name (limit $limit s)"
    timeout "$limit" "$@"
    local rc=$?
    echo "gpu_bench.sh: == $name: rc $rc after $((SECONDS - t0)) s"
}

if want 1; then
    step "1. bench 256 px" 180 "$PY" -m deco_bench.stages.bench --profile-gpu-paper --resolutions 256 --compile none \
        --out "$BASE-256.json" --record-note "$NOTE; eager bf16, 256 px"
    keep "$BASE-256.json"
fi

if want 2; then
    if [ -z "$OFFICIAL" ]; then
        echo "gpu_bench.sh: step 2 (ours vs official) skipped: no official DeCo checkout; pass --official DIR or" \
             "set DECO_OFFICIAL=DIR (a clone of github.com/Zehong-Ma/DeCo)"
    elif [ ! -f "$OFFICIAL/src/models/transformer/dit_c2i_DeCo.py" ]; then
        echo "gpu_bench.sh: step 2 (ours vs official) skipped: $OFFICIAL_FROM=$OFFICIAL is not a DeCo checkout" \
             "(no src/models/transformer/dit_c2i_DeCo.py in it)"
    else
        step "2. ours vs official, XL at 256 px" 120 "$PY" -m deco_bench.tools.vs_official --official "$OFFICIAL" \
            --device cuda --size xl --repeats 7 --out "$CHK-vs-official-xl.json"
        keep "$CHK-vs-official-xl.json"
    fi
fi

if want 3; then
    step "3. bench 512 px" 150 "$PY" -m deco_bench.stages.bench --profile-gpu-paper --resolutions 512 --compile none \
        --out "$BASE-512.json" --record-note "$NOTE; eager bf16, 512 px"
    keep "$BASE-512.json"
fi

if want 4; then
    SMOKE=$(mktemp -d)
    smoke() {
        "$PY" - "$SMOKE" <<'PYEOF' || return 1
import os
import sys
import yaml
from deco_bench import profiles
d = profiles.resolve("smoke")
d["run"]["device"] = os.environ.get("SMOKE_DEVICE", "cuda")
open(sys.argv[1] + "/params.yaml", "w").write(yaml.safe_dump(d, sort_keys=False))
PYEOF
        local P="--params $SMOKE/params.yaml"
        "$PY" -m deco_bench.stages.prepare --out "$SMOKE/data" $P &&
        "$PY" -m deco_bench.stages.train --model deco --data "$SMOKE/data" --out "$SMOKE/runs/deco" \
            --summary "$SMOKE/train-deco.json" $P &&
        "$PY" -m deco_bench.stages.sample --model deco --run-dir "$SMOKE/runs/deco" --preview "$SMOKE/previews" $P &&
        "$PY" - "$SMOKE" "$CHK-smoke-cuda.json" <<'PYEOF'
import json
import sys
import numpy as np
import torch
from deco_bench.bench import env as envmod
from deco_bench.io import atomic_write_json
root, out = sys.argv[1], sys.argv[2]
s = np.load(root + "/runs/deco/samples.npz")
arr = s[s.files[0]]
atomic_write_json(out, {"schema": "deco-bench/gpu-smoke/1",
                        "what": "prepare, train (bf16 autocast, EMA, checkpoints) and sample stages of the smoke "
                                "profile with run.device cuda; numbers from it mean nothing, it shows the code runs",
                        "train_summary": json.load(open(root + "/train-deco.json")),
                        "samples": {"files": list(s.files), "shape": list(arr.shape), "dtype": str(arr.dtype),
                                    "finite": bool(np.isfinite(arr.astype(np.float64)).all())},
                        "env": envmod.fingerprint(torch.device("cuda", 0) if torch.cuda.is_available() else
                                                  torch.device("cpu"), dtype="bf16", compile=[False])})
PYEOF
    }
    export PY CHK SMOKE
    export -f smoke
    step "4. smoke pipeline on cuda" 60 bash -c smoke
    keep "$CHK-smoke-cuda.json"
    rm -rf "$SMOKE"
fi

if want 5; then
    step "5. train-step breakdown, XL at 256 px" 300 "$PY" -m deco_bench.tools.breakdown \
        --presets deco-xl,baseline-xl --resolution 256 --batch 32 --compile-blocks --out "$CHK-breakdown.json"
    keep "$CHK-breakdown.json"
fi

if want 6; then
    step "6. bench 256 px, compile modes" 540 "$PY" -m deco_bench.stages.bench --profile-gpu-paper --resolutions 256 \
        --compile none,blocks,full --out "$BASE-256-compile.json" \
        --record-note "$NOTE; train.compile none/blocks/full, CUDA-graph sampling in the compiled cases, bf16, 256 px"
    keep "$BASE-256-compile.json"
fi

if want 7; then
    step "7a. train step 256 px batch 64, compile modes" 270 "$PY" -m deco_bench.stages.bench --profile-gpu-paper \
        --resolutions 256 --train-batch 64 --train-only --compile none,blocks,full --out "$BASE-256-b64-compile.json" \
        --record-note "$NOTE; train step only, batch 64, train.compile none/blocks/full, bf16, 256 px"
    keep "$BASE-256-b64-compile.json"
    step "7b. train step 512 px batch 16, compile modes" 270 "$PY" -m deco_bench.stages.bench --profile-gpu-paper \
        --resolutions 512 --train-only --compile none,blocks,full --out "$BASE-512-compile.json" \
        --record-note "$NOTE; train step only, batch 16, train.compile none/blocks/full, bf16, 512 px"
    keep "$BASE-512-compile.json"
fi
ls -l "$BASE"*.json "$CHK"*.json 2>/dev/null || echo "gpu_bench.sh: nothing was written"
