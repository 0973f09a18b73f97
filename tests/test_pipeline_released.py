"""The released-checkpoint path end to end (released-sample -> released-evaluate -> table2) at seconds scale.

A small preset's weights are written in the released checkpoints' format (a Lightning `state_dict` with
`denoiser.*`, `ema_denoiser.*` and `diffusion_trainer.*` keys, plus the official YAML beside it), the released-256
profile is pointed at it with a random Inception and a tiny reference batch, and `dvc repro table2` runs in a
temporary copy of the repository. Every declared output is checked, and the counted NFE against its closed form.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deco_bench.models import build_model, get_preset
from deco_bench.models.official import OFFICIAL_TO_OURS

from metrics._inception_fixture import make_random_inception_state
from test_pipeline import BIN, _run, copy_repository

N_IMAGES, RES, CLASSES = 6, 32, 4


def ours_to_official(key: str, kind: str) -> str:
    """The inverse of models.official.official_key_to_ours (the mapping is one to one)."""
    for pattern, repl in OFFICIAL_TO_OURS[kind]:
        groups = re.findall(r"\((\\d\+|\.\*)\)", pattern)
        inverse = re.escape(repl)
        for i, g in enumerate(groups, 1):
            inverse = inverse.replace(re.escape(f"\\{i}"), f"({g})")
        m = re.fullmatch(inverse, key)
        if m:
            official = pattern
            for i, value in enumerate(m.groups(), 1):
                official = re.sub(r"\((\\d\+|\.\*)\)", value.replace("\\", "\\\\"), official, count=1)
            return official.replace("\\.", ".")
    return key


def write_released_checkpoint(path: Path, preset: str, num_classes: int, seed: int = 0) -> int:
    cfg = get_preset(preset)
    cfg = cfg.__class__(**{**cfg.__dict__, "num_classes": num_classes})
    torch.manual_seed(seed)
    raw, ema = build_model(cfg), build_model(cfg)
    with torch.no_grad():  # the official init zeroes output layers: perturb everything so v != 0
        for p in list(raw.parameters()) + list(ema.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    state = {}
    for prefix, model in (("denoiser.", raw), ("ema_denoiser.", ema)):
        state.update({prefix + ours_to_official(k, cfg.kind): v for k, v in model.state_dict().items()})
    state["diffusion_trainer.proj.0.weight"] = torch.randn(8, cfg.hidden_size)  # REPA projector: not the denoiser
    torch.save({"state_dict": state, "epoch": 319, "global_step": 1600000}, path)
    return sum(p.numel() for p in ema.parameters())


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    repo = copy_repository(tmp_path_factory.mktemp("released") / "repo")
    weights = repo / "weights"
    weights.mkdir()
    n_params = write_released_checkpoint(weights / "small_epoch320.ckpt", "deco-s", num_classes=CLASSES)
    torch.save(make_random_inception_state(seed=0), weights / "random-inception.pth")
    rng = np.random.default_rng(3)
    np.savez(weights / "ref.npz", arr_0=rng.integers(0, 255, (N_IMAGES, RES, RES, 3), dtype=np.uint8))
    _run([sys.executable, "-m", "deco_bench.tools.cli", "profile", "use", "released-256"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(resolution=RES, num_classes=CLASSES)
    params["sample"].update(num_images=N_IMAGES, batch_size=4, shard_size=4)
    params["evaluate"].update(inception_weights="weights/random-inception.pth", inception_sha256="none",
                              reference="weights/ref.npz", bootstrap=3, batch_size=N_IMAGES)
    params["run"]["threads"] = 1
    ckpt = "weights/small_epoch320.ckpt"
    params["released"] = {
        "e320": dict(checkpoint=ckpt, preset="deco-s", epochs=320, label="small, Euler 20", sampler="euler",
                     num_steps=20, cfg_scale=3.2, guidance_interval=[0.1, 1.0]),
        "heun": dict(checkpoint=ckpt, preset="deco-s", epochs=600, weights="raw", sampler="heun", num_steps=2,
                     cfg_scale=1.0, guidance_interval=[0.1, 1.0]),
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "released"], repo)
    if not (repo / ".dvc").exists():
        _run([str(BIN / "dvc"), "init", "-q"], repo)
    log = _run([str(BIN / "dvc"), "repro", "table2"], repo)
    return {"repo": repo, "log": log, "n_params": n_params}


@pytest.mark.slow
def test_released_profile_end_to_end(released):
    repo = released["repo"]
    assert "Running stage 'train" not in released["log"]  # no training on this path
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    declared = [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]
    assert {"released/e320/samples.npz", "released/heun/samples.npz", "released/results/e320.json",
            "reports/table2.html", "reports/table2.json"} <= set(declared)
    assert all((repo / p).exists() for p in declared)
    for row, expected_nfe in (("e320", 3 + 17 * 2), ("heun", 2 * 2 - 1)):
        z = np.load(repo / "released" / row / "samples.npz")
        assert z["arr_0"].shape == (N_IMAGES, RES, RES, 3) and z["arr_0"].dtype == np.uint8
        assert z["labels"].tolist() == [i % CLASSES for i in range(N_IMAGES)]  # cycling, never class-sorted
        manifest = json.loads((repo / "released" / row / "sampling.json").read_text())
        # Euler 20 with CFG on t in (0.1, 1]: the steps at t = 0, 0.05, 0.10 run the conditional half only
        assert manifest["nfe_per_image"] == expected_nfe
        assert manifest["parameters"] == released["n_params"]
        assert manifest["checkpoint_sha256"] == __import__("hashlib").sha256(
            (repo / "weights/small_epoch320.ckpt").read_bytes()).hexdigest()
        metrics = json.loads((repo / "released" / row / "metrics.json").read_text())
        assert all(isinstance(v, (int, float)) for v in metrics.values())  # numbers only
        assert {"fid", "fid_lo", "fid_hi", "sfid", "is", "precision", "recall", "num_images"} <= set(metrics)
        result = json.loads((repo / "released" / "results" / f"{row}.json").read_text())
        proto = result["protocol"]
        for key in ("checkpoint_sha256", "weights", "sampler", "num_steps", "nfe_per_image", "cfg_scale",
                    "guidance_interval", "timeshift", "seed", "label_schedule_sha256", "dtype",
                    "float32_matmul_precision", "evaluator_weights_sha256", "reference_sha256", "num_images_scored",
                    "is_ordering", "hardware"):
            assert key in proto, key
        assert result["ordering"]["class_sorted"] is False
    assert json.loads((repo / "released/e320/sampling.json").read_text())["weights"] == "ema"
    assert json.loads((repo / "released/heun/sampling.json").read_text())["weights"] == "raw"
    table = json.loads((repo / "reports/table2.json").read_text())
    rows = {r["row"]: r for r in table["rows"]}
    # 32 px is no Table 2 resolution: both rows are shown without a paper value (the verdict rule: test_table2_*)
    assert rows["e320"]["paper_method"] is None and rows["e320"]["verdict"] == "no paper row"
    assert rows["heun"]["verdict"] == "no paper row" and rows["heun"]["nfe_per_image"] == 3
    fid = next(c for c in rows["e320"]["cells"] if c["key"] == "fid")
    assert fid["ours"] == json.loads((repo / "released/e320/metrics.json").read_text())["fid"] and "paper" not in fid
    html = (repo / "reports/table2.html").read_text()
    assert "small, Euler 20" in html and "no paper row" in html and "checkpoint_sha256" in html


@pytest.mark.slow
def test_second_repro_does_nothing_and_a_wrong_checkpoint_is_named(released):
    repo = released["repo"]
    log = _run([str(BIN / "dvc"), "repro", "table2"], repo)
    assert "Running stage 'released-" not in log and "Running stage 'table2'" not in log
    # a baseline checkpoint where a DeCo one is expected: a named error, nothing written
    write_released_checkpoint(repo / "weights" / "baseline.ckpt", "baseline-s", num_classes=CLASSES)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["released"]["wrong"] = dict(checkpoint="weights/baseline.ckpt", preset="deco-s", epochs=320)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "deco_bench.stages.released", "sample", "--row", "wrong"], cwd=repo,
                          capture_output=True, text=True, env={"PYTHONPATH": str(repo), "PATH": str(BIN)})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "the file holds a baseline DiT checkpoint (dit_c2i_baseline.FlattenDiT)" in proc.stderr
    assert not (repo / "released" / "wrong" / "samples.npz").exists()


def test_table2_matches_paper_rows_and_gives_verdicts(tmp_path):
    from deco_bench.stages import table2

    assert table2.paper_row(256, 800, "euler", 250)["fid"] == 1.62
    assert table2.paper_row(256, 600, "heun", 50)["fid"] == 1.69  # Heun 50 steps = the paper's 100x2
    assert table2.paper_row(512, 340, "euler", 100)["fid"] == 2.22
    assert table2.paper_row(256, 600, "euler", 100) is None  # README/IMG-only row: not in deco_bench/paper.py
    assert table2.verdict(1.63, [1.60, 1.66], 1.62, "fid") == "reproduced"
    assert table2.verdict(1.68, [1.624, 1.70], 1.62, "fid") == "reproduced"  # widened by 0.005, half a printed unit
    assert table2.verdict(1.68, [1.65, 1.70], 1.62, "fid") == "close"  # 3.7% off, outside the interval
    assert table2.verdict(1.80, [1.75, 1.85], 1.62, "fid") == "differs"
    assert table2.verdict(1.62, None, 1.62, "fid") == "reproduced"
    (tmp_path / "results").mkdir()
    result = {"label": "e800", "row_params": {"epochs": 800, "sampler": "euler", "num_steps": 250, "cfg_scale": 3.0},
              "metrics": {"fid": 1.70, "is": 301.2}, "ci": {"fid": [1.66, 1.74]},
              "protocol": {"nfe_per_image": 451.0, "num_images_scored": 50000}}
    (tmp_path / "results" / "e800.json").write_text(json.dumps(result))
    table = table2.build(["e800"], 256, tmp_path)
    row = table["rows"][0]
    assert row["paper_method"] == "DeCo-XL/16" and row["verdict"] == "close"
    cells = {c["key"]: c for c in row["cells"]}
    assert cells["fid"]["difference"] == pytest.approx(0.08) and cells["is"]["verdict"] == "reproduced"
    (tmp_path / "results" / "e800.json").write_text("{}")
    with pytest.raises(Exception, match="e800.json: not a released-evaluate result"):
        table2.build(["e800"], 256, tmp_path)
