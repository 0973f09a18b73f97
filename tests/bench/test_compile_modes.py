"""The bench stage measures train.compile modes side by side in one run (here with dynamo's "eager" backend:
graph capture without code generation, which on 2 CPU cores takes minutes), and states MFU against the GPU
actually present: a board of the same name with a lower power limit is another board with another peak."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from deco_bench.bench import flops
from deco_bench.bench.runner import resolve_peak
from deco_bench.config import BenchParams, ConfigError
from deco_bench.training import compile as compilemod

ROOT = Path(__file__).resolve().parents[2]


def _params(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["run"]["threads"] = 1
    raw["train"]["repa_align_layer"] = 1
    raw["models"] = {"deco": {"preset": "deco-tiny", "label": "DeCo", "arch": {"depth": 1, "decoder_depth": 1}},
                     "baseline": {"preset": "baseline-tiny", "label": "Baseline"}}  # not benched: convergence names it
    raw["bench"] = {**raw["bench"], "models": ["deco"], "sizes": [{"resolution": 16, "train_batch": 2, "sample_batch": 1}],
                    "warmup": 1, "repeats": 1, "sample_repeats": 1, "sample_timed_steps": 0,
                    "sampling": [{"name": "e3", "num_steps": 3, "cfg_scale": 1.0, "guidance_interval": [0.0, 1.0]}]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _args(params, out, **kw):
    return argparse.Namespace(**{**dict(params=str(params), out=out, device="cpu", profile_gpu_paper=False,
                                        resolutions="", compile="", record_note="", train_batch=0, train_only=False,
                                        summary=None),
                                 **kw})


def test_compile_modes_side_by_side(tmp_path, monkeypatch):
    import torch._dynamo

    from deco_bench.stages import bench

    monkeypatch.setattr(compilemod, "BACKEND", "eager")
    out = tmp_path / "r.json"
    bench.run(_args(_params(tmp_path), out, compile="none,blocks,full"))
    torch._dynamo.reset()
    r = json.loads(out.read_text())
    assert list(r["cases"]) == ["16px/eager", "16px/blocks", "16px/full"]
    assert r["env"]["compile"] == ["none", "blocks", "full"] and r["settings"]["compile"] == ["none", "blocks", "full"]
    for case_id, mode in (("16px/eager", "none"), ("16px/blocks", "blocks"), ("16px/full", "full")):
        case = r["cases"][case_id]
        train, sample = case["models"]["deco"]["train"], case["models"]["deco"]["sample"]["e3"]["batch_1"]
        assert case["compile"] == mode and "error" not in train and "error" not in sample
        assert train["warmup"] == 1 and train["first_step_s"] > 0 and train["s_per_iter"]["median"] > 0
        assert (train["compile_s"] is None) == (mode == "none")
        if mode == "none":
            assert "cuda_graphs" not in sample
        else:  # compiled cases sample through the CUDA-graph path, which says why it ran eagerly here
            assert sample["cuda_graphs"] == 0
            assert sample["cuda_graphs_reason"] == "no CUDA graphs on cpu: the steps run eagerly"


def test_bad_compile_and_batch_overrides_are_one_line(tmp_path):
    from deco_bench.stages import bench

    with pytest.raises(ConfigError) as e:
        bench.run(_args(_params(tmp_path), tmp_path / "r.json", compile="none,fast"))
    assert str(e.value) == ("invalid parameter --compile: got 'none,fast'; expected distinct modes out of none, "
                            "blocks, full separated by commas, e.g. none,blocks,full")
    with pytest.raises(ConfigError, match=r"^invalid parameter --train-batch: got -2; expected a batch >= 1"):
        bench.run(_args(_params(tmp_path), tmp_path / "r.json", train_batch=-2))
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("name,max_power_w,peak,variant", [
    ("NVIDIA H200", 700.0, 989e12, "NVML max power limit 700 W: the full-power board its name gives"),
    ("NVIDIA H200", 600.0, 835e12, "identified as H200 NVL by its NVML max power limit of 600 W"),
    ("NVIDIA H200 NVL", 600.0, 835e12, None),
    ("NVIDIA H200", None, 989e12, "max power limit not read: the board is taken to be the one its name gives"),
    ("NVIDIA H100 80GB HBM3", 350.0, 756e12, "identified as H100 PCIe by its NVML max power limit of 350 W"),
    ("NVIDIA H100 80GB HBM3", 400.0, 835e12, "identified as H100 NVL by its NVML max power limit of 400 W"),
    ("NVIDIA H100 80GB HBM3", 700.0, 989e12, "NVML max power limit 700 W: the full-power board its name gives"),
])
def test_peak_of_the_board_present(name, max_power_w, peak, variant):
    value, source = flops.documented_peak(name, max_power_w)
    assert value == peak
    assert source.endswith(variant) if variant else ";" not in source


def test_resolve_peak_records_the_board(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    bp = BenchParams()
    p = resolve_peak(bp, torch.device("cuda", 0), torch.bfloat16, {"power_max_limit_w": 600.0})
    assert p["flops_per_s"] == 835e12 and p["device_name"] == "NVIDIA H200" and p["power_max_limit_w"] == 600.0
    assert "H200 NVL datasheet" in p["source"]
    assert resolve_peak(bp, torch.device("cpu"), None)["reason"] == (
        "not measured: MFU is stated against a bf16 peak and this run is float32")
