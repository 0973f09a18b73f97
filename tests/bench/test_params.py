"""The `bench:` params contract (declared in deco_bench/config.py): every key required, every bad key reported at
once by name; the recorded GPU profile."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deco_bench.bench.params import paper_gpu_profile
from deco_bench.config import BenchSize, ConfigError, parse_params

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments" / "default.yaml").read_text())


def with_bench(**changes) -> dict:
    raw = copy.deepcopy(DEFAULT)
    raw["bench"].update(changes)
    return raw


def test_full_section():
    p = parse_params(with_bench(models=["deco"], sizes=[{"resolution": 64, "train_batch": 4, "sample_batch": 2}],
                                compile=["none", "blocks"], sampling=[{"name": "e100", "num_steps": 100, "cfg_scale": 3.2,
                                                                  "guidance_interval": [0.1, 1.0]}],
                                sample_timed_steps=5, peak_tflops=500, peak_source="measured with a bf16 matmul")).bench
    assert p.sizes == (BenchSize(64, 4, 2),) and p.compile == ("none", "blocks")
    assert p.sampling[0].guidance_interval == (0.1, 1.0) and p.peak_tflops == 500.0


def test_every_problem_is_named():
    raw = with_bench(models=["deco", "nope"], sizes=[{"resolution": 32, "train_batch": 0}], repeats=0,
                     sampling=[{"name": "a.b", "num_steps": 10, "cfg_scale": 1.0, "guidance_interval": [0.9, 0.1]}],
                     compile=["full", "full"], peak_tflops=100, peak_source="", speed=1)
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    keys = {k for k, _ in e.value.problems}
    assert keys == {"bench.models", "bench.sizes[0].sample_batch", "bench.sizes[0].train_batch", "bench.repeats",
                    "bench.sampling[0].name", "bench.sampling[0].guidance_interval", "bench.compile",
                    "bench.peak_source", "bench.speed"}


def test_a_missing_key_is_an_error():
    raw = copy.deepcopy(DEFAULT)
    del raw["bench"]["warmup"]
    with pytest.raises(ConfigError, match="bench.warmup: missing required key"):
        parse_params(raw)


def test_paper_profile_is_valid_and_covers_both_resolutions():
    p = paper_gpu_profile()
    assert [s.resolution for s in p.sizes] == [256, 512]
    assert p.precision == "bf16" and p.sample_timed_steps >= 2
    names = {s.name: (s.num_steps, s.cfg_scale) for s in p.sampling}
    assert names["euler100_cfg"] == (100, 3.2) and names["euler50"] == (50, 1.0)


def test_compile_modes_are_train_compile_modes():
    with pytest.raises(ConfigError) as e:
        parse_params(with_bench(compile=[False]))
    assert str(e.value) == ("invalid parameter bench.compile: got [False]; expected a list of distinct modes out of "
                            "none, blocks, full, e.g. [none] or [none, blocks, full]")
    raw = copy.deepcopy(DEFAULT)
    raw["train"]["compile"] = True
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert str(e.value) == "invalid parameter train.compile: got True; accepted values: 'none', 'blocks', 'full'"
    raw["train"].update(compile="blocks", activation_checkpointing="yes")
    with pytest.raises(ConfigError, match="^invalid parameter train.activation_checkpointing: expected bool, got str"):
        parse_params(raw)
    assert parse_params(with_bench(compile=["none", "blocks", "full"])).bench.compile == ("none", "blocks", "full")
    assert DEFAULT["train"]["compile"] == "none" and DEFAULT["train"]["activation_checkpointing"] is False
