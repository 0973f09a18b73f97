#!/usr/bin/env bash
# The recorded GPU benchmark, prepared as one call for a session that has a GPU (issue "GPU throughput, memory
# and efficiency benchmarks", item 4). From the repository root:
#
#     bash scripts/gpu_bench.sh ["free-text note for the recording"]
#
# Writes bench/recordings/<gpu>-<date>.json (DeCo-XL vs Baseline-XL at 256 and 512: bf16 train step at the
# official per-GPU batches 32 / 16, sampling 100x2 CFG 3.2 on [0.1, 1] and 50 steps without CFG, each timed over
# 10 Euler steps and extrapolated to the whole trajectory -- the JSON states it; MFU against the documented dense
# bf16 peak, 989 TFLOPS for H100/H200 SXM, source in the JSON) and, when the official checkout is found
# (DECO_OFFICIAL_REPO or /work/official), <gpu>-<date>-vs-official.json (ours/official ratios on the GPU).
# COMPILE=1 adds a torch.compile run (<gpu>-<date>-compiled.json; compiling XL takes minutes).
# If $OUT is set (the device runner's return folder) every file is also copied there.
# Expected device time: about 3-5 minutes eager on an H200 (each step has its own timeout below).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
NOTE=${1:-"DeCo-XL vs Baseline-XL, paper sizes (scripts/gpu_bench.sh)"}
DATE=$(date -u +%Y-%m-%d)
REC=bench/recordings
mkdir -p "$REC"

"$PY" - <<'PYEOF'
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
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,mig.mode.current --format=csv || true

GPU=$("$PY" -c "import torch; n = torch.cuda.get_device_name(0); print(next((k.lower() for k in ('H200', 'H100', 'H800', 'A100', 'A800', 'L40S', 'B200') if k in n), n.split()[-1].lower()))")
BASE="$REC/$GPU-$DATE"

timeout 480 "$PY" -m deco_bench.stages.bench --profile-gpu-paper --compile off --out "$BASE.json" \
    --record-note "$NOTE; eager bf16" || echo "gpu_bench.sh: the eager benchmark failed or timed out (rc $?)"

if OFFICIAL=${DECO_OFFICIAL_REPO:-/work/official}; [ -f "$OFFICIAL/src/models/transformer/dit_c2i_DeCo.py" ]; then
    timeout 180 "$PY" -m deco_bench.bench.vs_official --official "$OFFICIAL" --device cuda --repeats 11 \
        --out "$BASE-vs-official.json" || echo "gpu_bench.sh: the ours-vs-official comparison failed (rc $?)"
else
    echo "gpu_bench.sh: no official checkout (set DECO_OFFICIAL_REPO); ours-vs-official skipped"
fi

if [ "${COMPILE:-0}" = 1 ]; then
    timeout 540 "$PY" -m deco_bench.stages.bench --profile-gpu-paper --resolutions 256 --compile on \
        --out "$BASE-compiled.json" --record-note "$NOTE; torch.compile bf16" \
        || echo "gpu_bench.sh: the compiled benchmark failed or timed out (rc $?)"
fi

if [ -n "${OUT:-}" ]; then cp -v "$BASE"*.json "$OUT"/ 2>/dev/null || true; fi
ls -l "$BASE"*.json 2>/dev/null || echo "gpu_bench.sh: nothing was written"
