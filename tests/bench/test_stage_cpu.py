"""The bench stage end to end on CPU with a tiny `bench:` section: the JSON carries the environment
fingerprint and the resolved settings, and marks every GPU-only field null with a reason."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from deco_bench.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def params_file(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["run"]["threads"] = 1
    raw["train"]["repa_align_layer"] = 1
    raw["models"] = {"deco": {"preset": "deco-tiny", "label": "DeCo"},
                     "baseline": {"preset": "baseline-tiny", "label": "Baseline", "freqfm_weight": 0.0}}
    raw["bench"] = {**raw["bench"], "models": ["deco", "baseline"],
                    "sizes": [{"resolution": 16, "train_batch": 2, "sample_batch": 2}],
                    "warmup": 0, "repeats": 1, "sample_repeats": 1, "sample_timed_steps": 0,
                    "sampling": [{"name": "e3", "num_steps": 3, "cfg_scale": 2.0, "guidance_interval": [0.0, 1.0]}]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def args(params: Path, out: Path, **kw) -> argparse.Namespace:
    base = dict(params=str(params), out=out, device="cpu", profile_gpu_paper=False, resolutions="", compile="",
                record_note="", train_batch=0, train_only=False, summary=None)
    return argparse.Namespace(**{**base, **kw})


def test_stage_writes_result_with_fingerprint_and_null_gpu_fields(params_file, tmp_path):
    from deco_bench.stages import bench

    out, summary = tmp_path / "bench" / "results.json", tmp_path / "bench" / "summary.json"
    bench.run(args(params_file, out, summary=summary))
    r = json.loads(out.read_text())
    env = r["env"]
    assert env["device"] == "cpu" and env["dtype"] == "float32" and env["compile"] == ["none"]
    assert env["torch"] and env["hardware"]["torch_threads"] == 1 and "git_revision" in env
    assert env["driver"] is None
    case = r["cases"]["16px/eager"]
    deco = case["models"]["deco"]
    assert deco["preset"] == "deco-tiny" and deco["model_config"]["num_classes"] == 8  # data.num_classes
    for phase in (deco["train"], deco["sample"]["e3"]["batch_1"], deco["sample"]["e3"]["batch_2"]):
        assert phase["memory"]["cuda_peak_allocated_bytes"] is None and phase["memory"]["cuda_reason"]
        assert phase["nvml"] is None and phase["nvml_reason"]
        assert phase["mfu"] is None and phase["mfu_reason"]
        assert phase["memory"]["host_rss_peak_bytes"] > 0
    assert r["settings"]["sizes"] == [{"resolution": 16, "train_batch": 2, "sample_batch": 2}]
    assert "deco/baseline" in case["ratios"]
    # the DVC metrics: headline figures and ratios of the results, numbers only; CUDA memory is not measured on CPU
    s = json.loads(summary.read_text())
    assert s == {"deco_train_images_per_s": deco["train"]["images_per_s"]["median"],
                 "baseline_train_images_per_s": case["models"]["baseline"]["train"]["images_per_s"]["median"],
                 "deco_sample_images_per_s": deco["sample"]["e3"]["batch_2"]["images_per_s"]["median"],
                 "baseline_sample_images_per_s":
                     case["models"]["baseline"]["sample"]["e3"]["batch_2"]["images_per_s"]["median"],
                 "deco_over_baseline_train_images_per_s": case["ratios"]["deco/baseline"]["train.images_per_s.median"],
                 "deco_over_baseline_sample_images_per_s":
                     case["ratios"]["deco/baseline"]["sample.e3.batch_2.images_per_s.median"]}


def test_bad_bench_section_is_one_clear_error(params_file, tmp_path):
    from deco_bench.stages import bench

    raw = yaml.safe_load(params_file.read_text())
    raw["bench"]["sizes"] = [{"resolution": 18, "train_batch": 2, "sample_batch": 2}]  # not a multiple of 4
    params_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"bench.sizes\[0\].resolution"):
        bench.run(args(params_file, tmp_path / "r.json"))
