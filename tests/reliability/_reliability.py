"""Helpers of the fault-injection tests: a tiny parameter file, stage commands, process control."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# The smallest run that still exercises everything a resume must restore: REPA encoder and projector, FreqFM,
# AdamW moments, EMA, rotated checkpoints (keep_last < number written) and evaluation checkpoints off the
# checkpoint grid (step 5 is redone from the step-4 checkpoint when a kill lands between them).
TINY = {
    "run": {"threads": 1, "device": "cpu"},
    "data": {"resolution": 16, "num_classes": 4, "train_per_class": 16, "ref_per_class": 8},
    "models": {"deco": {"preset": "deco-tiny", "label": "DeCo"},
               "baseline": {"preset": "baseline-tiny", "label": "Baseline", "freqfm_weight": 0.0}},
    "train": {"steps": 30, "global_batch": 8, "ckpt_every": 2, "keep_last": 2, "eval_ckpt_steps": [5, 20],
              "log_every": 1, "repa_align_layer": 1, "lr": 1.0e-3, "ema_decay": 0.9},
    "sample": {"num_images": 48, "batch_size": 4, "shard_size": 4, "num_steps": 8},
    "evaluate": {"batch_size": 8},
}


def tiny_params_mapping(**section_overrides: dict) -> dict:
    raw = yaml.safe_load((ROOT / "experiments" / "default.yaml").read_text())
    for section, values in TINY.items():
        if section == "models":
            raw["models"] = copy.deepcopy(values)
        else:
            raw[section].update(values)
    for section, values in section_overrides.items():
        raw.setdefault(section, {}).update(values)
    return raw


def write_params(path: Path, **section_overrides: dict) -> Path:
    path.write_text(yaml.safe_dump(tiny_params_mapping(**section_overrides), sort_keys=False))
    return path


def stage_cmd(module: str, *args: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", f"deco_bench.stages.{module}", *map(str, args)]


def start(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start a stage as its own process (stderr to `log`, so a full pipe can never block it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)


def wait_for(predicate, proc: subprocess.Popen | None, timeout: float = 240.0, poll: float = 0.005) -> bool:
    """Poll until predicate() is true (True) or the process exits first (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(poll)
    raise TimeoutError("condition not reached in time")
