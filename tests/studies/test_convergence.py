"""Convergence speed (paper Fig. 5): crossing steps, speed-up and its bootstrap interval on curves with known
answers, EMA evaluation checkpoints, and per-checkpoint reuse in the convergence stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deco_bench.studies import convergence as cv
from deco_bench.config import ConfigError, ModelEntry, TrainParams, parse_params

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ crossings


def test_steps_to_reach_interpolates_the_first_crossing():
    # 10 -> 6 -> 2 over 100..300: 4 is crossed halfway between 200 and 300.
    assert cv.steps_to_reach([100, 200, 300], [10, 6, 2], 4) == pytest.approx(250.0)
    # Non-monotone: the FIRST crossing of 5 (between 100 and 200), not the later dip.
    assert cv.steps_to_reach([100, 200, 300, 400], [10, 3, 8, 1], 5) == pytest.approx(100 + 5 / 7 * 100)
    # Exactly on a checkpoint's value: that checkpoint.
    assert cv.steps_to_reach([100, 200, 300], [10, 6, 2], 6) == pytest.approx(200.0)


def test_steps_to_reach_first_checkpoint_and_never():
    assert cv.steps_to_reach([100, 200], [3, 2], 5) == 100.0  # reached before anything was measured: an upper bound
    assert cv.steps_to_reach([100, 200], [9, 7], 5) is None
    # Higher is better (e.g. IS): 2 -> 6 crosses 5 at three quarters of the way.
    assert cv.steps_to_reach([0, 100], [2, 6], 5, lower_is_better=False) == pytest.approx(75.0)
    assert cv.steps_to_reach([0, 100], [2, 6], 5) == 0.0  # the same curve read as lower-is-better


@pytest.mark.parametrize("steps, values", [([1, 1], [2, 1]), ([2, 1], [2, 1]), ([1, 2], [1.0, np.nan]),
                                           ([1, 2], [1.0]), ([], [])])
def test_bad_curves_are_refused(steps, values):
    with pytest.raises(ValueError):
        cv.steps_to_reach(steps, values, 1.0)


# ------------------------------------------------------------------------------------------------ speed-up

BASE = cv.Curve([100, 200, 300, 400], [8.0, 6.0, 4.0, 3.0])


def test_speedup_known_answer():
    deco = cv.Curve([100, 200, 300, 400], [6.0, 3.5, 2.0, 1.5])
    r = cv.speedup(BASE, deco, "best")
    # Target 3.0 (baseline best, at 400); DeCo: 3.5 -> 2.0 crosses 3.0 one third past 200.
    assert r.target_value == 3.0 and r.baseline_steps == 400.0
    assert r.deco_steps == pytest.approx(200 + 100 / 3)
    assert r.speedup == pytest.approx(400 / (200 + 100 / 3))
    assert r.kind == cv.EXACT
    assert r.baseline_reaches_deco_best is False  # the baseline never gets to 1.5
    assert "1.71x fewer iterations" in cv.statement(r, "fd_embed")


def test_speedup_final_target_uses_the_baselines_first_crossing():
    base = cv.Curve([100, 200, 300], [8.0, 4.0, 5.0])  # final 5.0, first reached between 100 and 200
    r = cv.speedup(base, cv.Curve([100, 200, 300], [6.0, 4.0, 3.0]), "final")
    assert r.target_value == 5.0
    assert r.baseline_steps == pytest.approx(175.0)
    assert r.deco_steps == pytest.approx(150.0)
    assert r.speedup == pytest.approx(175 / 150)


def test_speedup_never_reached_is_stated_plainly():
    r = cv.speedup(BASE, cv.Curve([100, 200, 300, 400], [9.0, 8.0, 7.0, 5.0]), "best")
    assert r.deco_steps is None and r.speedup is None and r.kind == cv.INDETERMINATE
    text = cv.statement(r, "fd_embed", deco_last_step=400)
    assert "never reaches" in text and "within its 400 iterations" in text and "no speed-up" in text


def test_speedup_reached_at_first_checkpoint_is_a_lower_bound():
    r = cv.speedup(BASE, cv.Curve([100, 200, 300, 400], [2.5, 2.0, 1.8, 1.7]), "best")
    assert r.deco_steps == 100.0 and r.speedup == pytest.approx(4.0) and r.kind == cv.LOWER_BOUND
    assert "at least 4.00x" in cv.statement(r, "fd_embed")


def test_paper_fig5_gives_the_claimed_tenfold_speedup():
    # Baseline final 2.59 at 4.0M; DeCo 4.04 (200K) -> 2.57 (400K) crosses 2.59 at 200K + 1.45/1.47 * 200K.
    paper = cv.paper_speedup()
    assert paper["target_value"] == 2.59 and paper["baseline_steps"] == 4_000_000
    assert paper["deco_steps"] == pytest.approx(200_000 + 1.45 / 1.47 * 200_000)
    assert paper["speedup_iters"] == pytest.approx(10.068, abs=1e-3)
    assert paper["scale"].startswith("paper")


def test_axis_at_interpolates_the_training_log():
    steps, elapsed = [10, 20, 30], [1.0, 2.0, 4.0]
    assert cv.axis_at(25, steps, elapsed) == pytest.approx(3.0)
    assert cv.axis_at(5, steps, elapsed) == pytest.approx(0.5)  # (0, 0) prepended
    assert cv.axis_at(31, steps, elapsed) is None  # no extrapolation past the log
    assert cv.axis_at(None, steps, elapsed) is None


# ------------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_pairs_replicates_of_the_two_models():
    # DeCo's replicate b is the baseline's replicate b on a schedule twice as fast: every paired speed-up is exactly 2
    # (linear interpolation scales with the steps). Curves differ between replicates, so mis-pairing would show.
    rng = np.random.default_rng(0)
    reps = 5.0 + rng.normal(0, 1.0, size=(6, 40)).cumsum(0)
    bs = cv.bootstrap_speedup([2, 4, 6, 8, 10, 12], reps, [1, 2, 3, 4, 5, 6], reps.copy(), "best")
    assert bs.speedups == pytest.approx([2.0] * 40)
    assert bs.interval == pytest.approx((2.0, 2.0)) and bs.fraction_reached == 1.0
    mispaired = cv.bootstrap_speedup([2, 4, 6, 8, 10, 12], reps, [1, 2, 3, 4, 5, 6], reps[:, ::-1], "best")
    assert mispaired.speedups != pytest.approx([2.0] * 40)


def test_bootstrap_with_never_reached_replicates():
    base = np.tile(np.array([[8.0], [6.0], [4.0], [3.0]]), (1, 20))
    deco = np.tile(np.array([[6.0], [3.5], [2.0], [1.5]]), (1, 20))
    deco[:, :5] = np.array([[9.0], [8.0], [7.0], [5.0]])  # 5 of 20 replicates never reach 3.0
    bs = cv.bootstrap_speedup(BASE.steps, base, BASE.steps, deco, "best")
    assert bs.fraction_reached == pytest.approx(0.75)
    assert bs.speedups[:5] == [None] * 5
    lo, hi = bs.interval
    assert lo is None  # 25% of replicates never reach: no lower bound at 95%
    assert hi == pytest.approx(400 / (200 + 100 / 3))


def test_percentile_with_never_orders_none_lowest():
    vals = [float(v) for v in range(100, 0, -1)] + [None] * 2  # 102 values, unsorted: None, None, 1..100
    assert cv.percentile_with_never(vals) == (1.0, 98.0)  # k = ceil(102 * 0.025) - 1 = 2: third smallest, largest
    assert cv.percentile_with_never([float(v) for v in range(1, 101)]) == (3.0, 98.0)  # k = 2 of 100
    assert cv.percentile_with_never([None] * 3 + [1.0] * 37) == (None, 1.0)
    assert cv.percentile_with_never([None] * 40) == (None, None)


def test_summarise_wall_and_images_speedups():
    conv = cv.ConvergenceParams(bootstrap=0)
    pts = {m: [{"step": s, "value": v, "lo": None, "hi": None} for s, v in zip(c.steps, c.values)]
           for m, c in (("baseline", BASE), ("deco", cv.Curve(BASE.steps, [6.0, 3.5, 2.0, 1.5])))}
    steps = [50 * k for k in range(1, 9)]
    logs = {"baseline": {"step": steps, "elapsed_s": [1.0 * s for s in steps], "images_seen": [32 * s for s in steps]},
            "deco": {"step": steps, "elapsed_s": [1.5 * s for s in steps], "images_seen": [32 * s for s in steps]}}
    rows, out = cv.summarise(pts, logs, conv, metric="fd_embed", lower_is_better=True,
                             labels={"deco": "DeCo", "baseline": "Baseline"})
    iters = 400 / (200 + 100 / 3)
    assert out["speedup_iters"] == pytest.approx(iters)
    assert out["speedup_wall"] == pytest.approx(iters / 1.5)  # DeCo's steps take 1.5x longer
    assert out["speedup_images"] == pytest.approx(iters)  # same batch size
    assert out["interval"] is None and "interval" in out["reasons"]
    assert {(r["model"], r["step"], r["elapsed_s"]) for r in rows} >= {("deco", 200, 300.0), ("baseline", 400, 400.0)}


# ------------------------------------------------------------------------------------------------ parameters


def _raw_params(**convergence) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["eval_ckpt_steps"] = [100, 200]
    raw["train"]["steps"] = 300
    raw["convergence"] = {**raw["convergence"], "num_images": 4, "num_steps": 2, "bootstrap": 8, **convergence}
    return raw


def test_convergence_params_defaults_and_metric():
    conv = parse_params(_raw_params()).convergence
    assert (conv.deco, conv.baseline, conv.num_images, conv.target) == ("deco", "baseline", 4, "best")
    assert cv.resolve_metric(conv, "embed") == "fd_embed" and cv.resolve_metric(conv, "inception") == "fid"


@pytest.mark.parametrize("bad, key", [({"num_images": 1}, "convergence.num_images"),
                                      ({"deco": "nope"}, "convergence.deco"),
                                      ({"baseline": "deco"}, "convergence.baseline"),
                                      ({"metric": "fid"}, "convergence.metric"),  # embed feature space: fd_embed
                                      ({"target": "median"}, "convergence.target"),
                                      ({"bootstrap": -1}, "convergence.bootstrap"),
                                      ({"typo": 1}, "convergence.typo")])
def test_bad_convergence_params_name_the_key(bad, key):
    with pytest.raises(ConfigError) as e:
        parse_params(_raw_params(**bad))
    assert key in [k for k, _ in e.value.problems]


# ------------------------------------------------------------------------------------------------ training


def _train(out: Path, steps: int, eval_steps: list[int]):
    from deco_bench.data import ArrayDataset
    from deco_bench.models import build_model, get_preset
    from deco_bench.training.distributed import DistInfo
    from deco_bench.training.loop import train

    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8), np.arange(16) % 4)
    tp = TrainParams(steps=steps, global_batch=4, lr=1e-3, ema_decay=0.5, ckpt_every=2, keep_last=5,
                     eval_ckpt_steps=eval_steps, log_every=1)
    torch.manual_seed(0)
    cfg = get_preset("deco-tiny", num_classes=4)
    train(build_model(cfg), data, tp=tp, entry=ModelEntry(preset="deco-tiny", repa_weight=0.0), seed=0, out_dir=out,
          dist_info=DistInfo(0, 1, 0, torch.device("cpu")), encoder=None, null_label=cfg.num_classes,
          meta={"fingerprint": "conv-test", "model_config": {}})


def _ema(path: Path) -> dict:
    from deco_bench.io import safe_torch_load

    return safe_torch_load(path)["ema"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_eval_checkpoints_are_the_ema_at_their_step_and_do_not_disturb_training(tmp_path):
    _train(tmp_path / "sched", 4, [2, 4])
    _train(tmp_path / "stop2", 2, [])
    _train(tmp_path / "plain", 4, [])
    at2 = _ema(tmp_path / "sched/eval_ckpts/step_00000002.pt")
    at4 = _ema(tmp_path / "sched/eval_ckpts/step_00000004.pt")
    assert _same(at2, _ema(tmp_path / "stop2/final.pt"))  # EMA state of a run stopped at step 2
    assert _same(at4, _ema(tmp_path / "sched/final.pt"))
    assert not _same(at2, at4)  # the comparison can fail: EMA moves between steps 2 and 4
    assert _same(_ema(tmp_path / "plain/final.pt"), _ema(tmp_path / "sched/final.pt"))  # saving changes nothing
    # Resume: continue the run stopped at 2 (its resume checkpoint) to 4 with the schedule on: the same weights.
    _train(tmp_path / "stop2", 4, [2, 4])
    assert _same(_ema(tmp_path / "stop2/eval_ckpts/step_00000004.pt"), at4)


# ------------------------------------------------------------------------------------------------ stage reuse

VALUES = {("deco", 100): 6.0, ("deco", 200): 3.0, ("deco", 300): 2.0,
          ("baseline", 100): 8.0, ("baseline", 200): 5.0, ("baseline", 300): 3.5}


@pytest.fixture
def stage_env(tmp_path, monkeypatch):
    from deco_bench.stages import convergence as stage

    calls = {"sample": [], "evaluate": []}

    def fake_sample_set(weights, out_npz, shard_dir, *, sp, seed, **kw):
        calls["sample"].append((weights.parent.parent.name, int(weights.stem[5:])))
        out_npz.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out_npz, arr_0=np.zeros((sp.num_images, 4, 4, 3), np.uint8))
        shard_dir.mkdir(parents=True, exist_ok=True)

    def fake_evaluate(samples_npz, reference_npz, *, num_images_expected, bootstrap, **kw):
        key = (Path(samples_npz).parent.name, int(Path(samples_npz).stem[5:]))
        calls["evaluate"].append(key)
        v = VALUES[key]
        return {"metrics": {"fd_embed": v}, "ci": {"fd_embed": [v - 0.1, v + 0.1]},
                "bootstrap": {"fd_embed": [v] * bootstrap}, "skipped": {}, "num_images": num_images_expected}

    monkeypatch.setattr(stage, "sample_set", fake_sample_set)
    monkeypatch.setattr(stage, "evaluate_samples", fake_evaluate)
    monkeypatch.chdir(tmp_path)
    for m, sec_per_step in (("deco", 0.2), ("baseline", 0.1)):
        (tmp_path / "runs" / m / "eval_ckpts").mkdir(parents=True)
        for s in (100, 200, 300):
            torch.save({"step": s, "model": m}, tmp_path / "runs" / m / "eval_ckpts" / f"step_{s:08d}.pt")
        (tmp_path / "runs" / m / "train_log.jsonl").write_text("".join(
            json.dumps({"step": s, "elapsed_s": sec_per_step * s, "images_seen": 32 * s}) + "\n"
            for s in range(10, 301, 10)))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reference.npz").write_bytes(b"reference")
    (tmp_path / "evalnet.pt").write_bytes(b"net")

    def run(schedule, **conv):
        raw = _raw_params(**conv)
        raw["train"]["eval_ckpt_steps"] = schedule
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
        calls["sample"].clear(), calls["evaluate"].clear()
        stage.run("params.yaml", Path("runs"), Path("data"), Path("evalnet.pt"), Path("convergence"))
        return json.loads((tmp_path / "convergence/summary.json").read_text())

    return run, calls, tmp_path


def test_stage_evaluates_only_new_or_changed_checkpoints(stage_env):
    run, calls, root = stage_env
    out = run([100, 200])
    assert sorted(calls["evaluate"]) == sorted([(m, s) for m in ("deco", "baseline") for s in (100, 200)])
    # Baseline best 5.0 at 200; DeCo 6 -> 3 crosses 5 one third past 100.
    assert out["speedup_iters"] == pytest.approx(200 / (100 + 100 / 3))
    assert out["speedup_wall"] == pytest.approx(out["speedup_iters"] * 0.1 / 0.2)
    assert out["interval"] == pytest.approx([out["speedup_iters"]] * 2)  # replicates equal the point values
    # the DVC metrics file: the same numbers, flat, interval ends as _lo/_hi keys, nothing but numbers
    dvc_metrics = json.loads((root / "convergence/speedup.json").read_text())
    assert dvc_metrics == {"speedup_iters": out["speedup_iters"], "speedup_iters_lo": out["interval"][0],
                           "speedup_iters_hi": out["interval"][1], "speedup_wall": out["speedup_wall"],
                           "speedup_wall_lo": out["interval_wall"][0], "speedup_wall_hi": out["interval_wall"][1],
                           "fraction_reached": out["fraction_reached"], "num_images": out["num_images"]}

    run([100, 200])
    assert calls["sample"] == [] and calls["evaluate"] == []  # nothing redone

    out = run([100, 200, 300])
    assert sorted(calls["sample"]) == sorted(calls["evaluate"]) == [("baseline", 300), ("deco", 300)]
    assert out["speedup_iters"] == pytest.approx(300 / (100 + 2.5 / 3 * 100))  # target 3.5 now
    rows = json.loads((root / "convergence/curves.json").read_text())
    assert len(rows) == 6 and {r["metric"] for r in rows} == set(VALUES.values())

    run([100, 200, 300], bootstrap=4)  # an evaluation setting: re-scored, samples reused
    assert calls["sample"] == [] and len(calls["evaluate"]) == 6

    run([100, 200, 300], bootstrap=4, num_steps=3)  # a sampling setting: everything redone
    assert len(calls["sample"]) == 6 and len(calls["evaluate"]) == 6


def test_stage_refuses_a_missing_scheduled_checkpoint(stage_env):
    from deco_bench.io import MissingFileError

    run, _, root = stage_env
    (root / "runs/deco/eval_ckpts/step_00000200.pt").unlink()
    with pytest.raises(MissingFileError, match="step_00000200.pt"):
        run([100, 200])
