"""A tiny, complete pipeline set-up (params.yaml, prepared data, EMA weights) for the fault-injection tests."""

from __future__ import annotations

import pytest
import torch

from _reliability import write_params


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """params.yaml, prepared embedded data and an untrained-but-deterministic EMA weights file (for sampling)."""
    from deco_bench import config as cfgmod
    from deco_bench.io import atomic_torch_save
    from deco_bench.models import build_model
    from deco_bench.stages import prepare

    root = tmp_path_factory.mktemp("tiny_pipeline")
    params = write_params(root / "params.yaml")
    threads = torch.get_num_threads()
    try:
        prepare.run(str(params), root / "data")
    finally:
        torch.set_num_threads(threads)
    p = cfgmod.load_params(params)
    model_cfg = cfgmod.model_config(p, "deco")
    torch.manual_seed(123)
    net = build_model(model_cfg)
    weights = root / "weights" / "final.pt"
    # untrained weights standing in for the run's final.pt: they claim the step the sample stage expects
    atomic_torch_save({"step": p.train.steps, "ema": net.state_dict(),
                       "meta": {"model_config": cfgmod.to_dict(model_cfg), "fingerprint": "tiny", "model_name": "deco"}},
                      weights)
    return {"root": root, "params": params, "data": root / "data", "weights": weights, "p": p}


@pytest.fixture
def keep_torch_threads():
    """Stage functions called in-process set torch's thread count from run.threads; restore it afterwards."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
