"""Two gloo processes under torchrun give the same training result as one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deco_bench.models import build_model, get_preset

WORKER = Path(__file__).with_name("ddp_worker.py")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    subprocess.run([sys.executable, str(WORKER), str(single), "2"], check=True, env=_env(), timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(WORKER), str(multi), "1"], check=True, env=_env(), timeout=300)
    a = torch.load(single / "weights.pt", weights_only=True)
    b = torch.load(multi / "weights.pt", weights_only=True)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    torch.manual_seed(0)
    init = build_model(get_preset("deco-tiny", num_classes=4)).state_dict()
    moved = max(float((a[k] - init[k]).abs().max()) for k in a)
    assert moved > 1e-4  # training did change the weights, so equality below means something
    assert worst < 1e-5, f"DDP weights differ from single-process weights by {worst}"
    la, lb = _losses(single), _losses(multi)
    assert len(la) == len(lb) == 3
    assert la == pytest.approx(lb, rel=1e-5, abs=1e-6)
