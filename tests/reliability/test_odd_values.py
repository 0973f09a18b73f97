"""Values that used to pass every check and crash a stage later (or a profile command, or hide a count) are refused
or reported up front, each with its one-line named error."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from _reliability import ROOT, tiny_params_mapping, write_params
from deco_bench import config as cfgmod
from deco_bench.stages import _common, prepare
from deco_bench.tools import cli


@pytest.mark.parametrize("section, key, value, line", [
    ("sample", "num_images", 4 - 1, "invalid parameter sample.num_images: 3 images; every metric needs at least 4 "
                                    "(precision/recall use each image's 3rd nearest neighbour)"),
    ("convergence", "num_images", 3, "invalid parameter convergence.num_images: 3 images per checkpoint; every metric "
                                     "needs at least 4"),
    ("data", "resolution", 2**20, "invalid parameter data.resolution: got 1048576; must be <= 4096 and >= 8"),
    ("run", "seed", 2**64, "invalid parameter run.seed: got 18446744073709551616; must be <= 4294967295 and >= 0"),
    ("sample", "seed", 2**64, "invalid parameter sample.seed: got 18446744073709551616; must be <= 4294967295 and >= 0"),
    ("sample", "seeds", [0, 1], "invalid parameter sample.seeds: unknown key; accepted keys: batch_size, cfg_scale, "
                                "guidance_interval, num_images, num_steps, sampler, seed, shard_size, timeshift"),
])
def test_values_that_crashed_late_are_refused_by_the_parameter_check(section, key, value, line):
    raw = tiny_params_mapping(sample={"num_images": 8, "shard_size": 2}, data={"num_classes": 2})
    raw[section][key] = value
    with pytest.raises(cfgmod.ConfigError) as e:
        cfgmod.parse_params(raw)
    assert str(e.value) == line


def test_no_profile_names_the_removed_sample_seeds_key():
    for f in [ROOT / "params.yaml", *sorted((ROOT / "experiments").glob("*.yaml"))]:
        assert "seeds" not in ((yaml.safe_load(f.read_text()) or {}).get("sample") or {}), f


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_run_device_cuda_without_a_gpu_stops_a_stage_at_its_start(tmp_path):
    params = write_params(tmp_path / "params.yaml", run={"device": "cuda"})
    with pytest.raises(cfgmod.ConfigError) as e:
        _common.setup(str(params))
    assert str(e.value) == ("invalid parameter run.device: 'cuda' is asked for but no CUDA device is visible on this "
                            "machine; set run.device to auto or cpu, or run on a machine with a GPU")


@pytest.mark.parametrize("profile, line", [
    ("run: {seed: 1\n", "error: invalid parameter experiments/bad.yaml: not valid YAML (line 2, column 1): expected ',' "
                        "or '}', but got '<stream end>'"),
    ("- a\n- b\n", "error: invalid parameter experiments/bad.yaml: a profile holds a mapping of the sections it changes, "
                   "not list"),
    ("replace: 3\n", "error: invalid parameter experiments/bad.yaml: replace: expected a list of the dotted keys replaced "
                     "wholesale (e.g. [models]), got 3"),
    ("run:\n  seed: !!python/object/apply:os.system [echo hi]\n",
     "error: invalid parameter experiments/bad.yaml: not valid YAML (line 2, column 9): could not determine a "
     "constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
])
@pytest.mark.parametrize("action", ["use", "check"])
def test_a_malformed_profile_is_one_line_and_params_yaml_is_untouched(tmp_path, monkeypatch, capsys, profile, line,
                                                                      action):
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    (tmp_path / "experiments" / "bad.yaml").write_text(profile)
    (tmp_path / "params.yaml").write_text("the active parameters\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["profile", action, "bad"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [line]
    assert (tmp_path / "params.yaml").read_text() == "the active parameters\n"


def test_a_malformed_default_profile_is_refused_before_params_yaml_is_replaced(tmp_path, monkeypatch, capsys):
    (tmp_path / "experiments").mkdir()
    default = yaml.safe_load((ROOT / "experiments" / "default.yaml").read_text())
    (tmp_path / "experiments" / "default.yaml").write_text(yaml.safe_dump({**default, "run": [1, 2]}))
    (tmp_path / "params.yaml").write_text("the active parameters\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["profile", "use", "default"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: invalid parameter run: expected a mapping of keys, got list [1, 2]"]
    assert (tmp_path / "params.yaml").read_text() == "the active parameters\n"


def test_the_prepare_stage_counts_the_unreadable_imagenet_images_in_its_metrics(tmp_path, keep_torch_threads):
    root = tmp_path / "imagenet"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(3):
            (root / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    (root / "a" / "1.png").write_bytes(os.urandom(100))  # not an image
    cut = (root / "b" / "2.png").read_bytes()
    (root / "b" / "2.png").write_bytes(cut[: len(cut) // 2])  # an interrupted download
    params = write_params(tmp_path / "params.yaml", data={"source": "imagenet", "imagenet_root": str(root),
                                                          "num_classes": 2, "resolution": 16})
    prepare.run(str(params), tmp_path / "data")
    assert json.loads((tmp_path / "metrics" / "prepare" / "data.json").read_text()) == {
        "num_images": 6, "skipped_images": 2}  # numbers only (DVC metrics); the source is in data/info.json
    info = json.loads((tmp_path / "data" / "info.json").read_text())
    assert info["source"] == "imagenet" and info["skipped_images"] == 2
    assert sorted(info["skipped"]) == [str(root / "a" / "1.png"), str(root / "b" / "2.png")]
    assert all(reason.startswith("unreadable image") for reason in info["skipped"].values())


def test_the_embedded_source_reports_no_skipped_images(tiny_pipeline):
    got = json.loads((Path(tiny_pipeline["root"]) / "metrics" / "prepare" / "data.json").read_text())
    assert got == {"num_images": 4 * 16, "skipped_images": 0}
