"""No silent wrong results: every output is the model, step and sample set it names, or a named error.

The walk-through a new user makes (train N steps, raise to N + k through an experiment, return to N) must give
exactly the step-N model of an uninterrupted run; code edits and replaced files named by parameters must not be
resumed over; every weights file is byte-deterministic and records its step; every consumer checks it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from _reliability import ROOT, write_params
from deco_bench import config as cfgmod
from deco_bench.io import atomic_savez, atomic_torch_save, load_npz, safe_torch_load
from deco_bench.metrics import api as metrics_api
from deco_bench.metrics.adm_npz import TooFewImagesError
from deco_bench.stages import _sampling
from deco_bench.stages import evaluate as evaluate_stage
from deco_bench.stages import inputs as inputs_stage
from deco_bench.stages import train as train_stage
from deco_bench.training import checkpoint as ckpt
from deco_bench.training import resume
from deco_bench.training.resume import StepMismatchError

N = 20  # TINY trains 30 steps; eval checkpoints at 5 and 20, resume points every 2 steps, the last 2 kept


def train_to(pipe: dict, out: Path, steps: int, tmp: Path, **train_overrides) -> dict:
    """Run the train stage (in-process) with train.steps = `steps`; returns its summary (DVC metrics) and the step
    it resumed from (in the run's params.json)."""
    params = write_params(tmp / f"params-{out.name}-{steps}.yaml", train={"steps": steps, **train_overrides})
    summary = out.parent / f"{out.name}-summary.json"
    train_stage.run(str(params), "deco", pipe["data"], out, summary)
    return {**json.loads(summary.read_text()), "resumed_from": json.loads((out / "params.json").read_text())["resumed_from"]}


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.pt"))}


@pytest.fixture(scope="module")
def uninterrupted(tiny_pipeline, tmp_path_factory):
    """The reference: one uninterrupted run of exactly N steps."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    threads = torch.get_num_threads()
    try:
        summary = train_to(tiny_pipeline, tmp / "run", N, tmp)
    finally:
        torch.set_num_threads(threads)
    return {"dir": tmp / "run", "summary": summary}


@pytest.mark.parametrize("raised", [N + 2, N + 10], ids=["resume-point-at-N-kept", "retrain-from-scratch"])
def test_going_back_to_fewer_steps_gives_exactly_the_step_n_model(tiny_pipeline, uninterrupted, tmp_path, raised,
                                                                  keep_torch_threads):
    run = tmp_path / "run"
    train_to(tiny_pipeline, run, N, tmp_path)
    train_to(tiny_pipeline, run, raised, tmp_path)  # the experiment with more steps
    assert safe_torch_load(run / "final.pt")["step"] == raised
    summary = train_to(tiny_pipeline, run, N, tmp_path)  # back to the default
    # N + 2 keeps the step-N resume point (keep_last 2): nothing is trained; N + 10 keeps none: retrained
    assert summary["resumed_from"] == (N if raised == N + 2 else 0)
    assert summary["steps"] == N == uninterrupted["summary"]["steps"]
    ref = uninterrupted["dir"]
    final = safe_torch_load(run / "final.pt")
    assert final["step"] == N
    # byte for byte the uninterrupted run's final weights and evaluation checkpoints (the convergence inputs)
    assert (run / "final.pt").read_bytes() == (ref / "final.pt").read_bytes()
    assert files_of(run / "eval_ckpts") == files_of(ref / "eval_ckpts")
    assert sorted(s for s, _ in ckpt.list_checkpoints(run / "eval_ckpts")) == [5, 20]
    assert max(s for s, _ in ckpt.list_checkpoints(run / "ckpt")) == N
    curve = json.loads((run / "train_curve.json").read_text())
    ref_curve = json.loads((ref / "train_curve.json").read_text())
    assert [(r["step"], r["loss"]) for r in curve] == [(r["step"], r["loss"]) for r in ref_curve]
    assert curve[-1]["step"] == N


def test_two_identical_runs_write_byte_identical_weights_files(tiny_pipeline, uninterrupted, tmp_path,
                                                               keep_torch_threads):
    train_to(tiny_pipeline, tmp_path / "again", N, tmp_path)
    a, b = files_of(tmp_path / "again"), files_of(uninterrupted["dir"])
    assert set(a) == set(b) and "final.pt" in a and any(k.startswith("ckpt/") for k in a)
    assert a == b


def test_a_saved_file_does_not_carry_its_temporary_name(tmp_path):
    state = {"step": 1, "w": torch.arange(4.0)}
    atomic_torch_save(state, tmp_path / "a.pt")
    atomic_torch_save(state, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert b".tmp" not in (tmp_path / "a.pt").read_bytes()


def test_an_edit_to_the_training_code_starts_over_and_reverting_it_does_too(tiny_pipeline, tmp_path, monkeypatch,
                                                                            keep_torch_threads):
    run = tmp_path / "run"
    short = {"eval_ckpt_steps": [2]}
    monkeypatch.setattr(resume, "code_digest", lambda *a, **k: "code-A")
    assert train_to(tiny_pipeline, run, 6, tmp_path, **short)["resumed_from"] == 0
    assert train_to(tiny_pipeline, run, 8, tmp_path, **short)["resumed_from"] == 6  # same code: resumes
    monkeypatch.setattr(resume, "code_digest", lambda *a, **k: "code-B")  # the edit
    assert train_to(tiny_pipeline, run, 10, tmp_path, **short)["resumed_from"] == 0
    monkeypatch.setattr(resume, "code_digest", lambda *a, **k: "code-A")  # the revert
    assert train_to(tiny_pipeline, run, 10, tmp_path, **short)["resumed_from"] == 0


def test_the_code_digest_sees_an_edit_to_the_model_and_its_revert(tmp_path):
    pkg = Path(resume.__file__).resolve().parents[1]
    copy = tmp_path / "deco_bench"
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = resume.code_digest(root=copy)
    assert original == resume.code_digest()
    model = copy / "models" / "deco.py"
    text = model.read_text()
    model.write_text(text.replace("def forward(", "def forward(  ", 1))
    assert resume.code_digest(root=copy) != original
    model.write_text(text)
    assert resume.code_digest(root=copy) == original
    (copy / "report" / "extra.py").write_text("# not training code\n")
    assert resume.code_digest(root=copy) == original


def test_relabelling_a_model_does_not_retrain(tiny_pipeline, tmp_path, keep_torch_threads):
    run = tmp_path / "run"
    train_to(tiny_pipeline, run, 6, tmp_path, eval_ckpt_steps=[2])
    params = write_params(tmp_path / "relabelled.yaml", train={"steps": 8, "eval_ckpt_steps": [2]})
    raw = yaml.safe_load(params.read_text())
    raw["models"]["deco"]["label"] = "Renamed in the report"
    params.write_text(yaml.safe_dump(raw))
    train_stage.run(str(params), "deco", tiny_pipeline["data"], run, tmp_path / "summary.json")
    assert json.loads((run / "params.json").read_text())["resumed_from"] == 6


def test_replacing_an_init_from_file_changes_the_fingerprint(tiny_pipeline, tmp_path):
    p = tiny_pipeline["p"]
    init = tmp_path / "init.pt"
    shutil.copy(tiny_pipeline["weights"], init)
    q = dataclasses.replace(p, models={"deco": dataclasses.replace(p.model("deco"), init_from=str(init))})
    model_cfg = cfgmod.model_config(q, "deco")
    before = resume.trajectory_meta(q, "deco", model_cfg)["fingerprint"]
    assert resume.trajectory_meta(q, "deco", model_cfg)["fingerprint"] == before
    state = safe_torch_load(init)
    state["ema"] = {k: v + 1 for k, v in state["ema"].items()}
    atomic_torch_save(state, init)
    assert resume.trajectory_meta(q, "deco", model_cfg)["fingerprint"] != before


# ---- files named by parameters are DVC dependencies ------------------------------------------------------------

def test_dvc_yaml_makes_every_reader_depend_on_its_named_files():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["inputs"]["always_changed"] is True
    assert "inputs/train-${key}.json" in stages["train"]["do"]["deps"]
    assert "inputs/evaluate.json" in stages["evaluate"]["do"]["deps"]
    assert "inputs/evaluate.json" in stages["convergence"]["deps"]


def test_the_inputs_stage_hashes_every_named_file(tiny_pipeline, tmp_path, keep_torch_threads):
    ref, init = tmp_path / "ref.npz", tmp_path / "init.pt"
    ref.write_bytes(b"reference v1")
    init.write_bytes(b"weights v1")
    params = write_params(tmp_path / "params.yaml", evaluate={"reference": str(ref)})
    raw = yaml.safe_load(params.read_text())
    raw["models"]["deco"]["init_from"] = str(init)
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "inputs"
    (out).mkdir()
    (out / "train-removed_model.json").write_text("{}")
    inputs_stage.run(str(params), out)
    assert sorted(p.name for p in out.iterdir()) == ["evaluate.json", "train-baseline.json", "train-deco.json"]
    first = {p.name: p.read_text() for p in out.iterdir()}
    assert json.loads(first["evaluate.json"])["evaluate.reference"] == {
        "path": str(ref), "sha256": hashlib.sha256(b"reference v1").hexdigest()}
    inputs_stage.run(str(params), out)
    assert {p.name: p.read_text() for p in out.iterdir()} == first  # unchanged files: unchanged outputs
    ref.write_bytes(b"reference v2")
    inputs_stage.run(str(params), out)
    assert (out / "evaluate.json").read_text() != first["evaluate.json"]
    assert (out / "train-deco.json").read_text() == first["train-deco.json"]
    init.write_bytes(b"weights v2")
    inputs_stage.run(str(params), out)
    assert (out / "train-deco.json").read_text() != first["train-deco.json"]


@pytest.mark.slow
def test_replacing_a_named_file_reruns_exactly_its_readers_under_dvc(tmp_path):
    """The real `inputs` stage under DVC, with stand-in readers: a replaced reference re-runs its reader only."""
    bin_dir = Path(sys.executable).parent
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(ROOT / "deco_bench", repo / "deco_bench", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(repo / "params.yaml", evaluate={"reference": "ref.npz"})
    (repo / "ref.npz").write_bytes(b"v1")
    dvc_yaml = {"stages": {
        "inputs": stages["inputs"],
        "evaluate": {"cmd": "cp inputs/evaluate.json evaluated.json", "deps": ["inputs/evaluate.json"],
                     "outs": ["evaluated.json"]},
        "train": {"cmd": "cp inputs/train-deco.json trained.json", "deps": ["inputs/train-deco.json"],
                  "outs": ["trained.json"]}}}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1",
           "HOME": str(tmp_path)}

    def sh(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    sh("git", "init", "-q")
    sh(str(bin_dir / "dvc"), "init", "-q")
    sh(str(bin_dir / "dvc"), "repro")
    assert "Running stage" not in sh(str(bin_dir / "dvc"), "repro").replace("Running stage 'inputs'", "")
    (repo / "ref.npz").write_bytes(b"v2")  # replaced behind DVC's back
    out = sh(str(bin_dir / "dvc"), "repro")
    assert "Running stage 'evaluate'" in out and "Running stage 'train'" not in out, out


# ---- consumers check the step and the set they read ------------------------------------------------------------

def test_sampling_refuses_weights_of_another_step(tiny_pipeline, tmp_path):
    weights = tmp_path / "final.pt"
    state = safe_torch_load(tiny_pipeline["weights"])
    atomic_torch_save({**state, "step": 40}, weights)
    with pytest.raises(StepMismatchError, match=r"final\.pt: holds the weights of step 40, but step 30 is expected"):
        _sampling.load_ema_model(weights, torch.device("cpu"), expected_step=30)
    atomic_torch_save({k: v for k, v in state.items() if k != "step"}, weights)
    with pytest.raises(Exception, match="records no training step"):
        _sampling.load_ema_model(weights, torch.device("cpu"), expected_step=30)


def _samples(path: Path, n: int, res: int = 16, step: int | None = 30) -> Path:
    arrays = {"arr_0": np.zeros((n, res, res, 3), np.uint8), "labels": np.arange(n) % 4}
    if step is not None:
        arrays["train_step"] = np.asarray(step, np.int64)
    atomic_savez(path, **arrays)
    return path


def _no_extraction(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("features were extracted before the cheap checks")
    monkeypatch.setattr(metrics_api, "extract_npz", refuse)


def test_a_samples_file_with_more_images_than_asked_is_refused_before_extraction(tiny_pipeline, tmp_path,
                                                                                monkeypatch):
    _no_extraction(monkeypatch)
    ref = tiny_pipeline["data"] / "reference.npz"
    big = _samples(tmp_path / "big.npz", 60)
    with pytest.raises(metrics_api.SampleSetMismatchError,
                       match=r"big\.npz: holds 60 images, 48 were requested; refusing to score a part"):
        metrics_api.evaluate_samples(big, ref, feature_space="embed", feature_net_path=tmp_path / "x.pt",
                                     num_images_expected=48)
    with pytest.raises(TooFewImagesError, match="holds 40 images, 48 were requested"):
        metrics_api.check_sample_set(_samples(tmp_path / "small.npz", 40), ref, 48)
    metrics_api.check_sample_set(big, ref, 48, allow_subset=True)  # an explicit subset is allowed...
    assert metrics_api.subset_of(big, 48) == 60  # ... and reported


def test_samples_at_another_resolution_than_the_reference_are_refused(tiny_pipeline, tmp_path, monkeypatch):
    _no_extraction(monkeypatch)
    ref = tiny_pipeline["data"] / "reference.npz"
    tiny = _samples(tmp_path / "tiny.npz", 48, res=1)
    with pytest.raises(metrics_api.SampleSetMismatchError, match=r"images are 1x1, the reference .* holds 16x16"):
        metrics_api.check_sample_set(tiny, ref, 48)
    with pytest.raises(metrics_api.SampleSetMismatchError, match=r"images are 1x1, the run's resolution is 16x16"):
        metrics_api.check_sample_set(tiny, ref, 48, resolution=16)


def test_the_evaluate_stage_checks_name_count_and_step_before_any_work(tiny_pipeline, tmp_path, monkeypatch,
                                                                       keep_torch_threads):
    _no_extraction(monkeypatch)
    pipe, out = tiny_pipeline, tmp_path / "m.json"
    good = _samples(tmp_path / "good.npz", 48)
    with pytest.raises(cfgmod.ConfigError, match="models.nope: no such model"):
        evaluate_stage.run(str(pipe["params"]), "nope", good, pipe["data"], tmp_path / "net.pt", out)
    with pytest.raises(metrics_api.SampleSetMismatchError, match="holds 49 images, 48 were requested"):
        evaluate_stage.run(str(pipe["params"]), "deco", _samples(tmp_path / "more.npz", 49), pipe["data"],
                           tmp_path / "net.pt", out)
    with pytest.raises(StepMismatchError, match=r"drawn from the weights of step 40, but train.steps is 30"):
        evaluate_stage.run(str(pipe["params"]), "deco", _samples(tmp_path / "old.npz", 48, step=40), pipe["data"],
                           tmp_path / "net.pt", out)
    with pytest.raises(Exception, match="records no training step"):
        evaluate_stage.run(str(pipe["params"]), "deco", _samples(tmp_path / "none.npz", 48, step=None), pipe["data"],
                           tmp_path / "net.pt", out)
    assert not out.exists()


def test_sample_sets_record_the_step_they_were_drawn_from(tiny_pipeline, tmp_path):
    p = tiny_pipeline["p"]
    run = tmp_path / "run"
    step = _sampling.sample_set(tiny_pipeline["weights"], run / "samples.npz", run / "shards", sp=p.sample, seed=0,
                                num_classes=4, resolution=16, device_req="cpu", desc="sample deco",
                                expected_step=p.train.steps)
    assert step == p.train.steps == int(load_npz(run / "samples.npz", ["train_step"])["train_step"])
