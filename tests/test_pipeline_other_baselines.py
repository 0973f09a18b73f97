"""The pipeline's own stage functions train, sample and evaluate a PixNerd and a JiT+REPA entry (paper Table 1) on the
seconds-scale `smoke` profile: prepare -> evalnet -> train -> sample -> evaluate, in-process, in a temporary folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deco_bench.io import safe_torch_load
from deco_bench.profiles import resolve
from deco_bench.stages import evalnet, evaluate, prepare, sample, train

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
MODELS = {"pixnerd": {"preset": "pixnerd-tiny", "label": "PixNerd", "freqfm_weight": 0.0},
          "jit": {"preset": "baseline-tiny", "label": "JiT+REPA", "freqfm_weight": 0.0, "arch": {"prediction": "x"}}}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("other_baselines")
    raw = copy.deepcopy(resolve("smoke", EXPERIMENTS))
    raw["models"] = copy.deepcopy(MODELS)
    raw["convergence"].update(deco="pixnerd", baseline="jit")
    raw["bench"]["models"] = list(MODELS)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    threads = torch.get_num_threads()
    mp = pytest.MonkeyPatch()
    mp.chdir(root)  # the stages write relative paths (.cache/features, locks)
    try:
        prepare.run(str(params), root / "data")
        evalnet.run(str(params), root / "data", root / "runs" / "evalnet")
        for name in MODELS:
            run_dir = root / "runs" / name
            train.run(str(params), name, root / "data", run_dir, root / "summaries" / f"{name}.json")
            sample.run(str(params), name, run_dir, root / "previews")
            evaluate.run(str(params), name, run_dir / "samples.npz", root / "data",
                         root / "runs" / "evalnet" / "net.pt", root / "metrics" / f"{name}.json")
    finally:
        mp.undo()
        torch.set_num_threads(threads)
    return root, yaml.safe_load(params.read_text())


@pytest.mark.parametrize("name", list(MODELS))
def test_entry_trains_samples_and_evaluates(pipeline, name):
    root, p = pipeline
    final = safe_torch_load(root / "runs" / name / "final.pt")
    assert final["step"] == p["train"]["steps"]
    config = final["meta"]["model_config"]
    # the weights file carries what the network predicts, so the sample stage converts a JiT model's x to v
    assert (config["kind"], config["prediction"]) == {"pixnerd": ("pixnerd", "v"), "jit": ("baseline", "x")}[name]
    curve = json.loads((root / "runs" / name / "train_curve.json").read_text())
    assert [r["step"] for r in curve][-1] == p["train"]["steps"] and all(np.isfinite(r["loss"]) for r in curve)
    n, res = p["sample"]["num_images"], p["data"]["resolution"]
    with np.load(root / "runs" / name / "samples.npz", allow_pickle=False) as z:
        assert z["arr_0"].shape == (n, res, res, 3) and z["arr_0"].dtype == np.uint8
        assert int(z["train_step"]) == p["train"]["steps"]
    detail = json.loads((root / "evaluation" / f"{name}.json").read_text())
    assert detail["model"] == name and detail["train_step"] == p["train"]["steps"]
    flat = json.loads((root / "metrics" / f"{name}.json").read_text())  # the DVC metrics: the same numbers, flat
    for key in ("fd_embed", "is_embed", "precision_embed", "recall_embed", "kid_embed"):
        assert np.isfinite(detail["metrics"][key]) and flat[key] == detail["metrics"][key], key
