"""Profiles and the weights manifest name the same files; `deco-bench profile check` says what it compares."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from deco_bench import profiles
from deco_bench.tools import cli
from deco_bench.metrics import weights
from deco_bench.paper import OFFICIAL_PROFILE_VALUES
from deco_bench import config

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
PAPER_PROFILES = {"imagenet256-xl", "imagenet512-xl", "ablation-l"}


@pytest.mark.parametrize("name", profiles.available(EXPERIMENTS))
def test_profile_weights_files_are_the_manifest_files(name):
    """Every third-party file a profile names (Inception, DINOv2, ADM reference) is weights/<the manifest's file
    name>, so the missing-file error's download instructions produce exactly the file the profile reads. Only
    models.*.init_from (checkpoints of the user's own runs) is outside the manifest."""
    files = config.required_files(profiles.load_profile(name, EXPERIMENTS))
    manifest_names = {e.filename for e in weights.MANIFEST.values()}
    for f in files:
        if f.param.startswith("models.") and f.param.endswith(".init_from"):
            assert f.entry is None
            continue
        assert f.entry is not None, (f.param, f.path)
        assert f.path == Path("weights") / f.entry.filename, (f.param, f.path, f.entry.filename)
        assert f.path.name in manifest_names
    if name in PAPER_PROFILES:  # the paper profiles do name them: the loop above is not empty
        assert {f.param for f in files} >= {"train.repa_encoder_weights", "evaluate.inception_weights",
                                            "evaluate.reference"}


def test_official_configs_cover_exactly_the_profiles_with_official_values():
    assert set(profiles.OFFICIAL_CONFIGS) == set(OFFICIAL_PROFILE_VALUES) == PAPER_PROFILES


def test_profile_check_of_the_default_says_nothing_is_compared(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert cli.main(["profile", "check", "default"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "profile 'default': every parameter is valid; nothing is compared with an official config: 'default' is an "
        "embedded-scale profile (CPU-size models and data), and the embedded default and its variants have no "
        "official config; profiles with one: ablation-l, imagenet256-xl, imagenet512-xl"]


def test_profile_check_of_a_paper_profile_lists_what_it_compares(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert cli.main(["profile", "check", "imagenet512-xl"]) == 0
    keys = list(OFFICIAL_PROFILE_VALUES["imagenet512-xl"])
    assert len(keys) == 18
    assert capsys.readouterr().out.splitlines() == [
        "profile 'imagenet512-xl': compares 18 keys with the official configs' values (configs_c2i/DeCo_XL_512.yaml; "
        "recorded in deco_bench/paper.py OFFICIAL_PROFILE_VALUES): " + ", ".join(keys),
        "profile 'imagenet512-xl': every parameter is valid and the 18 compared keys equal the official values "
        "(keys not listed are not compared)"]


def test_profile_check_reports_a_changed_value_and_exits_1(tmp_path, monkeypatch, capsys):
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    f = tmp_path / "experiments" / "imagenet256-xl.yaml"
    raw = yaml.safe_load(f.read_text())
    raw["sample"]["cfg_scale"] = 4.0
    f.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["profile", "check", "imagenet256-xl"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("profile 'imagenet256-xl': compares 33 keys with the official configs' values "
                               "(configs_c2i/DeCo_XL.yaml, configs_c2i/Baseline_DiT_XL.yaml; ")
    assert lines[1:] == ["profile 'imagenet256-xl': every parameter is valid; 1 of the 33 compared keys differ from "
                         "the official values:", "  sample.cfg_scale: profile 4.0 != official 3.2"]


def test_profile_check_of_a_paper_scale_profile_without_official_values(tmp_path):
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    shutil.copy(EXPERIMENTS / "ablation-l.yaml", tmp_path / "experiments" / "mine.yaml")
    check = profiles.official_check("mine", tmp_path / "experiments")
    assert check.compared == () and check.mismatches == []
    assert profiles.describe_official_check(check) == [
        "profile 'mine': every parameter is valid; nothing is compared with an official config: no official config "
        "values are recorded for 'mine' in deco_bench/paper.py OFFICIAL_PROFILE_VALUES; profiles with one: "
        "ablation-l, imagenet256-xl, imagenet512-xl"]


def test_paper_profiles_do_not_inherit_the_embedded_recipe(tmp_path, monkeypatch, capsys):
    """The embedded default warms up, decays and clips; a paper profile that forgot to reset them is caught."""
    shutil.copytree(EXPERIMENTS, tmp_path / "experiments")
    f = tmp_path / "experiments" / "ablation-l.yaml"
    raw = yaml.safe_load(f.read_text())
    for key in ("lr_warmup", "lr_schedule", "grad_clip"):
        del raw["train"][key]
    f.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["profile", "check", "ablation-l"]) == 1
    out = capsys.readouterr().out
    for line in ("train.lr_warmup: profile 30 != official 0", "train.lr_schedule: profile 'cosine' != official 'constant'",
                 "train.grad_clip: profile 1.0 != official 0.0"):
        assert line in out
