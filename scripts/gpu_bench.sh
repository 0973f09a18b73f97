#!/usr/bin/env bash
# The recorded GPU checks, prepared as one call for a session that has a GPU machine. From the repository root:
#
#     bash scripts/gpu_bench.sh ["free-text note for the recording"]
#
# Steps, most important first; each has its own time limit, and a failed step does not stop the next:
#   1. bench stage at paper size, 256 px: DeCo-XL vs Baseline-XL bf16 train step at the official per-GPU batch 32,
#      sampling 100x2 (CFG 3.2 on (0.1, 1]) and 50 steps without CFG, timed over 10 Euler steps and extrapolated
#      (the JSON says so); peak memory, NVML telemetry and energy, MFU against the documented dense bf16 peak
#      (989 TFLOPS for H100/H200 SXM, source in the JSON)       -> bench/recordings/<gpu>-<date>-256.json
#   2. ours vs the official implementation at paper size on the GPU (DeCo-XL and Baseline-XL built from the
#      checkout's configs_c2i, same weights): forward parity in float32 and under bf16 autocast, train-step and
#      sampler time ratios; needs the official checkout (DECO_OFFICIAL_REPO, default /work/official)
#                                                                -> checks/<gpu>-<date>-vs-official-xl.json
#   3. the same bench at 512 px (train batch 16, the official 256 over 8 GPUs with grad_accum 2)
#                                                                -> <gpu>-<date>-512.json
#   4. the real pipeline stages (prepare, train, sample) on the `smoke` profile with run.device cuda: the training
#      loop's bf16 autocast, EMA, checkpointing and the sampler on CUDA -> checks/<gpu>-<date>-smoke-cuda.json
#   5. where the XL train step's time goes: kernel categories (torch.profiler) against wall time, and the step
#      with each block compiled (bench/breakdown.py)                 -> checks/<gpu>-<date>-breakdown.json
# COMPILE=1 adds a torch.compile run at 256 px (<gpu>-<date>-compiled.json; compiling XL takes minutes).
# If $OUT is set (the device runner's return folder) each file is copied there as soon as it is written.
# A copy whose .git is missing or stale names its revision: DECO_BENCH_GIT_REVISION=<sha> bash scripts/...
# Expected time on an H200: about 8 minutes; the step limits add up to 13.5, more than one device call allows:
# run steps 1-4 and step 5 as two calls if the limit is 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONUNBUFFERED=1
NOTE=${1:-"DeCo-XL vs Baseline-XL, paper sizes (scripts/gpu_bench.sh)"}
DATE=$(date -u +%Y-%m-%d)
REC=bench/recordings
mkdir -p "$REC"

"$PY" - <<'PYEOF' || exit 1
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_bench.sh: no CUDA device visible to torch " + torch.__version__ + "; nothing recorded")
print("gpu_bench.sh:", torch.cuda.get_device_name(0), "torch", torch.__version__, "CUDA", torch.version.cuda)
try:
    import pynvml  # noqa: F401  (nvidia-ml-py: telemetry and energy; the benchmark degrades without it)
except ImportError:
    print("gpu_bench.sh: warning: nvidia-ml-py not installed; NVML fields will be null with the reason")
PYEOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,mig.mode.current,clocks.max.sm --format=csv || true

GPU=$("$PY" -c "import torch; n = torch.cuda.get_device_name(0); print(next((k.lower() for k in ('H200', 'H100', 'H800', 'A100', 'A800', 'L40S', 'B200') if k in n), n.split()[-1].lower()))")
BASE="$REC/$GPU-$DATE"
CHK="$REC/checks/$GPU-$DATE"  # not bench-stage results: kept out of the report's recordings table
mkdir -p "$REC/checks"

keep() {  # keep FILE: report it and copy it to $OUT (the device runner's return folder) at once
    if [ -f "$1" ]; then
        echo "gpu_bench.sh: wrote $1"
        if [ -n "${OUT:-}" ]; then cp "$1" "$OUT"/; fi
    else
        echo "gpu_bench.sh: $1 was not written"
    fi
}
step() {  # step NAME SECONDS CMD...: run with a time limit; report the failure and go on
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "gpu_bench.sh: == $name (limit $limit s)"
    timeout "$limit" "$@"
    local rc=$?
    echo "gpu_bench.sh: == $name: rc $rc after $((SECONDS - t0)) s"
}

step "bench 256 px" 180 "$PY" -m deco_bench.stages.bench --profile-gpu-paper --resolutions 256 --compile off \
    --out "$BASE-256.json" --record-note "$NOTE; eager bf16, 256 px"
keep "$BASE-256.json"

OFFICIAL=${DECO_OFFICIAL_REPO:-/work/official}
if [ -f "$OFFICIAL/src/models/transformer/dit_c2i_DeCo.py" ]; then
    step "ours vs official, XL at 256 px" 120 "$PY" -m deco_bench.bench.vs_official --official "$OFFICIAL" \
        --device cuda --size xl --repeats 7 --out "$CHK-vs-official-xl.json"
    keep "$CHK-vs-official-xl.json"
else
    echo "gpu_bench.sh: no official checkout at $OFFICIAL (set DECO_OFFICIAL_REPO); ours-vs-official skipped"
fi

step "bench 512 px" 150 "$PY" -m deco_bench.stages.bench --profile-gpu-paper --resolutions 512 --compile off \
    --out "$BASE-512.json" --record-note "$NOTE; eager bf16, 512 px"
keep "$BASE-512.json"

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
step "smoke pipeline on cuda" 60 bash -c smoke
keep "$CHK-smoke-cuda.json"
rm -rf "$SMOKE"

step "train-step breakdown, XL at 256 px" 300 "$PY" -m deco_bench.bench.breakdown --presets deco-xl,baseline-xl \
    --resolution 256 --batch 32 --compile-blocks --out "$CHK-breakdown.json"
keep "$CHK-breakdown.json"

if [ "${COMPILE:-0}" = 1 ]; then
    step "bench 256 px, torch.compile" 540 "$PY" -m deco_bench.stages.bench --profile-gpu-paper --resolutions 256 \
        --compile on --out "$BASE-compiled.json" --record-note "$NOTE; torch.compile bf16, 256 px"
    keep "$BASE-compiled.json"
fi
ls -l "$BASE"*.json "$CHK"*.json 2>/dev/null || echo "gpu_bench.sh: nothing was written"
